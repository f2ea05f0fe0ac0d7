"""What the CLI shows while transferring: plain log lines without a terminal, a bar with one."""

from __future__ import annotations

import io

from modelreg.cli.output import human_bytes, human_duration, table
from modelreg.cli.progress import LogProgress, TerminalProgress
from modelreg.progress import Direction, Outcome

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_report_files_bytes_rate_and_eta() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = LogProgress(stream, interval=10, clock=clock)
    progress.begin(Direction.DOWNLOAD, 2, 100 * MIB)
    clock.now += 5
    progress.advance(25 * MIB)  # before the interval: no line
    clock.now += 5
    progress.advance(25 * MIB)
    progress.file_done("weights.bin", 50 * MIB, Outcome.DOWNLOADED)
    progress.retrying("other.bin", "connection reset", 0.5)
    clock.now += 10
    progress.advance(50 * MIB)
    progress.file_done("other.bin", 50 * MIB, Outcome.FROM_CACHE)
    progress.end()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "modelreg: downloading 2 files (100.0 MiB)",
        "modelreg: 50.0 MiB / 100.0 MiB (50%), 5.0 MiB/s, ETA 0:10",
        "modelreg: [1/2] weights.bin (50.0 MiB): downloaded and verified",
        "modelreg: other.bin: connection reset; retrying in 0.5s",
        "modelreg: 100.0 MiB / 100.0 MiB (100%), 5.0 MiB/s, ETA 0:00",
        "modelreg: [2/2] other.bin (50.0 MiB): verified from the local cache",
        "modelreg: 2/2 files, 100.0 MiB in 20.0s (5.0 MiB/s)",
    ]
    assert "\r" not in stream.getvalue()


def test_terminal_bar_redraws_one_line() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = TerminalProgress(stream, clock=clock)
    progress.begin(Direction.UPLOAD, 1, 10 * MIB)
    clock.now += 1
    progress.advance(5 * MIB)
    progress.file_done("m.bin", 10 * MIB, Outcome.UPLOADED)
    progress.end()
    output = stream.getvalue()
    assert output.count("\n") == 1
    assert output.endswith("\n")
    last = output.rstrip("\n").split("\r")[-1]
    assert last.startswith("↑ 1/1 files  5.0 MiB / 10.0 MiB  [############............]  50%")
    assert "5.0 MiB/s  ETA 0:01" in last


def test_human_formats() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * MIB, 3 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 TiB",
    ]
    assert (human_duration(59), human_duration(61), human_duration(3725)) == ("0:59", "1:01", "1:02:05")
    rendered = table(("A", "LONGER"), [("xyz", "1"), ("", "22")])
    assert rendered.splitlines() == ["A    LONGER", "xyz  1", "     22"]


def test_hashing_is_a_phase_with_a_summary_but_no_line_per_file() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = LogProgress(stream, interval=10, clock=clock)
    progress.begin(Direction.HASH, 2, 2 * MIB)
    for name in ("a", "b"):
        progress.advance(MIB)
        progress.file_done(name, MIB, Outcome.HASHED)
    clock.now += 1
    progress.end()
    assert stream.getvalue().splitlines() == [
        "modelreg: hashing 2 files (2.0 MiB)",
        "modelreg: 2/2 files, 2.0 MiB in 1.0s (2.0 MiB/s)",
    ]


def test_the_rate_is_never_negative_when_bytes_are_taken_back() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = LogProgress(stream, interval=1, clock=clock)
    progress.begin(Direction.DOWNLOAD, 1, 100 * MIB)
    clock.now += 1
    progress.advance(40 * MIB)
    clock.now += 1
    progress.advance(-40 * MIB)  # a damaged partial file is fetched again from the start
    assert "-" not in stream.getvalue().splitlines()[-1]
    assert "0 B/s" in stream.getvalue().splitlines()[-1]
