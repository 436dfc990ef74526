"""`sreval` command line: a thin shell over the library (argument parsing, progress, printing, exit codes).

One module per command group holds its parser setup next to its handlers; `flags` maps the library's parameter
names to the flags, `common` holds the options several commands share, `main` assembles the parser."""

from sreval.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
