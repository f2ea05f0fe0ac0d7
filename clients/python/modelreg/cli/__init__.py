"""The `modelreg` command-line tool (entry point `modelreg.cli:main`)."""

from modelreg.cli.app import entry_point, main

__all__ = ["entry_point", "main"]
