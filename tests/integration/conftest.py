"""Fixtures of the tests that run the `modelreg` executable."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.command_line import Cli, environment
from tests.support import unique


@pytest.fixture
def cli(stack: LocalStack, tmp_path: Path) -> Cli:
    """`modelreg` against the session's stack, as a fresh actor with its own cache."""
    return Cli(environment(stack, tmp_path / "cache", unique("cli-actor")), tmp_path)
