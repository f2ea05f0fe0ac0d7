"""How the CLI writes results: text for people, `--output json` for scripts.

Results go to stdout; progress, logs and errors go to stderr, so `$(modelreg push ...)` captures
only the version and a JSON consumer never sees a progress line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any, TextIO

from google.protobuf import json_format, message, timestamp_pb2

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: float) -> str:
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def timestamp(value: timestamp_pb2.Timestamp) -> str:
    if not value.seconds and not value.nanos:
        return ""
    return value.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def to_json(value: Any) -> Any:
    """Protobuf messages in their proto3 JSON form (field names as in the .proto); the rest as is."""
    if isinstance(value, message.Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain aligned table; the last column is not padded."""
    lines = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    rendered = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        rendered.append("  ".join(cells).rstrip())
    return "\n".join(rendered)


class Output:
    def __init__(
        self, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, text: str, data: Any) -> None:
        """Print the command's result: `text` for people, `data` as JSON with `--output json`."""
        if self.json_mode:
            self.stdout.write(json.dumps(to_json(data), indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        elif text:
            self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    def record(self, data: Any) -> None:
        """One JSON object per line (for streams such as `events --follow`)."""
        self.stdout.write(json.dumps(to_json(data), ensure_ascii=False) + "\n")
        self.stdout.flush()

    def line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def log(self, text: str) -> None:
        self.stderr.write(f"modelreg: {text}\n")
        self.stderr.flush()
