"""`python -m modelreg` runs the command-line tool."""

from modelreg.cli import entry_point

entry_point()
