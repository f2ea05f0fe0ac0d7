"""How the local stores fail: a server that does not start, an environment that contradicts itself."""

from __future__ import annotations


class StoreStartError(RuntimeError):
    """A store server could not be started, or did not become healthy in time."""


class StoreConfigError(ValueError):
    """The MODELREG_* environment names the external stores inconsistently."""
