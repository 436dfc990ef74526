"""sreval: evaluation suite for single-image super-resolution."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sreval")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: Bumped whenever a change alters any produced number (resize, colour conversion, metric formulas).
#: Part of every cache key and stored with every run.
PROTOCOL_VERSION = "1"
