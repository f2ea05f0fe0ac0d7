"""Running the Go client's toolchain from pytest: where `go` is, and the environment it gets.

Under CI a missing toolchain fails the test (CI installs it); elsewhere the Go tests are skipped
with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import IN_CI

GO_MODULE = Path(__file__).resolve().parents[2] / "clients" / "go"


def go_binary() -> str:
    found = shutil.which("go") or next((str(p) for p in (Path("/usr/local/go/bin/go"),) if p.is_file()), None)
    if found is None:
        if IN_CI:
            pytest.fail("no Go toolchain under CI: the Go client cannot be tested", pytrace=False)
        pytest.skip("no Go toolchain on this machine")
    return found


def go_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The process environment without MODELREG_* (only what a test passes), and the Makefile's
    Go settings: the machine's toolchain, modules exactly as go.sum pins them."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    # No VCS stamping: a test build needs no commit id, and git may refuse a checkout owned by
    # another user.
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")
    env.update(extra)
    return env


def run_go(args: list[str], env: Mapping[str, str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [go_binary(), *args],
        cwd=GO_MODULE,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build(package: str, output: Path, env: Mapping[str, str]) -> Path:
    """A static binary of a command of the Go module (as an init container image would hold it)."""
    result = run_go(["build", "-o", str(output), package], {**env, "CGO_ENABLED": "0"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return output
