"""Running the TypeScript client (clients/ts) from pytest: node, its installed packages, and the
environment the client gets.

Under CI a missing Node or a package not installed (`make tools` runs `npm ci`) fails the test;
elsewhere the TypeScript tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import IN_CI

TS_PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "ts"
# What the Node tests and the conformance scenario run with: TypeScript sources through tsx.
TSX = ("--import", "tsx")


def node_binary() -> str:
    found = shutil.which("node")
    if found is None:
        _missing("no Node.js on this machine")
    if not (TS_PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        _missing(f"the TypeScript client's packages are not installed in {TS_PACKAGE} (`make ts-deps`)")
    return found


def _missing(why: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{why}: under CI the TypeScript client must be tested", pytrace=False)
    pytest.skip(why)


def node_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The process environment without MODELREG_* (only what a test passes), so a developer's
    own registry settings never leak into a test."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    env.update(extra)
    return env


def run_node(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`node <args>` in clients/ts."""
    return subprocess.run(
        [node_binary(), *args],
        cwd=TS_PACKAGE,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tsc(args: Sequence[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The package's pinned TypeScript compiler."""
    compiler = TS_PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"
    return run_node([str(compiler), *args], os.environ, timeout=timeout)


def scenario_command(args: Sequence[str]) -> list[str]:
    """The conformance scenario's command line (run with cwd clients/ts): see
    clients/ts/conformance/scenario.ts."""
    return [node_binary(), *TSX, str(TS_PACKAGE / "conformance" / "scenario.ts"), *args]
