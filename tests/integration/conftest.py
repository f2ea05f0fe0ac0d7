"""Fixtures of the integration tests (the stack itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.command_line import Cli, environment
from tests.integration.isolated import Isolated
from tests.support import unique


@pytest.fixture
def cli(stack: LocalStack, tmp_path: Path) -> Cli:
    """`modelreg` against the session's stack, as a fresh actor with its own cache."""
    return Cli(environment(stack, tmp_path / "cache", unique("cli-actor")), tmp_path)


@pytest.fixture
def isolated(stack: LocalStack, tmp_path: Path) -> Iterator[Isolated]:
    """A metadata process of the test's own (tests/integration/isolated.py), killed at the end."""
    service = Isolated(stack, tmp_path)
    yield service
    if service.process is not None:
        service.process.kill()
