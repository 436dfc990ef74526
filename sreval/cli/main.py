"""The `sreval` program: its parser, assembled from the command groups, and `main`, which runs a command and turns
an expected failure into one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from sreval import __version__
from sreval.cli import analysis, benchmark, config, data, models, study
from sreval.cli.flags import command_of, reworded
from sreval.errors import ParameterError, SrevalError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sreval", description="Evaluation suite for ×4 single-image SR.")
    parser.add_argument("--version", action="version", version=f"sreval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (benchmark, data, models, study, analysis, config):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO if args.verbose else logging.WARNING)
    try:
        code: int = args.func(args)
        return code
    except ParameterError as e:  # the library names its parameter; the user reads the flag they typed
        print(f"error: {reworded(e, *command_of(parser, args))}", file=sys.stderr)
        return 2
    except SrevalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left early (`sreval assets | head`): normal, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 0
    except OSError as e:  # a folder that cannot be written, a disk that is full: the message names the path
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was stored", file=sys.stderr)
        return 130
