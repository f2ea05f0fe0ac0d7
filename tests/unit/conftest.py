"""Fixtures of the unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def internal_token_file(tmp_path: Path) -> str:
    """The artifact service's internal credential, as the local stack writes it (mode 0600)."""
    path = tmp_path / "internal.token"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("x" * 43 + "\n")
    return str(path)
