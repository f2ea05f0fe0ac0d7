"""Argument types and helpers shared by the commands."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from modelreg_api import names

from modelreg import access, credentials
from modelreg.cli.output import Output
from modelreg.cli.progress import LogProgress, TerminalProgress
from modelreg.credentials import Credential, CredentialError
from modelreg.progress import NoProgress, TransferProgress


class UsageError(Exception):
    """A command used wrongly (a confirmation missing, options that exclude each other, a file
    of the wrong shape): exit 2, naming the option or argument. Malformed resource names are the
    API's `InvalidResourceName` instead, as in the SDK."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


class Subcommands(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def param(text: str) -> tuple[str, Any]:
    """KEY=VALUE where VALUE is JSON when it parses (numbers, booleans, lists, objects), else text."""
    key, value = key_value(text)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def metric(text: str) -> tuple[str, float]:
    key, value = key_value(text)
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"metric {key!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"metric {key!r}: {value!r} is not a finite number")
    return key, number


def json_file(text: str) -> Any:
    try:
        with open(text, encoding="utf-8") as stream:
            return json.load(stream)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not valid JSON: {exc}") from None


def text_file(text: str) -> str:
    try:
        with open(text, encoding="utf-8") as stream:
            return stream.read()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None


_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, or several: `1d12h`."""
    parts = _DURATION_PART.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30d, 12h or 90m")
    return timedelta(seconds=sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def role(text: str) -> str:
    """A role name (viewer, editor, approver, admin), checked and lowercased."""
    try:
        return access.role_name(access.parse_role(text))
    except names.InvalidResourceName as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def token_file(text: str) -> Credential:
    """The credential in a file, read at once so a bad path is a usage error naming the option."""
    try:
        return credentials.read_token_file(Path(text).expanduser(), "--token-file")
    except CredentialError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def progress_for(args: argparse.Namespace, out: Output) -> TransferProgress:
    """A bar on a terminal, log lines otherwise (CI, Kubernetes), nothing with --quiet."""
    if args.quiet:
        return NoProgress()
    if out.stderr.isatty() and not out.json_mode:
        return TerminalProgress(out.stderr)
    return LogProgress(out.stderr if out.stderr is not None else sys.stderr)
