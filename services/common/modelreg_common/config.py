"""Reading service settings from the environment, once, with errors a person can act on.

Each service has one frozen settings dataclass built by `from_environment`; every problem is
collected so a misconfigured deployment learns all of them at the first start.
"""

from __future__ import annotations

from collections.abc import Mapping

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class EnvReader:
    """Typed access to environment variables that records problems instead of failing on the first."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self.problems: list[str] = []

    def text(self, key: str, default: str | None = None) -> str:
        value = self._env.get(key, "").strip()
        if value:
            return value
        if default is None:
            self.problems.append(f"{key} is required")
            return ""
        return default

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self._env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{key}={raw!r} is not an integer")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{key}={value} is outside [{minimum}, {maximum}]")
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self._env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{key}={raw!r} is not a number")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{key}={value} is outside [{minimum}, {maximum}]")
        return value

    def flag(self, key: str, default: bool) -> bool:
        raw = self._env.get(key, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{key}={raw!r} is not a boolean (true/false)")
        return default

    def address(self, key: str, default: str | None = None) -> str:
        """A `host:port` to listen on or connect to; required when there is no default."""
        value = self.text(key, default)
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problems.append(f"{key}={value!r} is not host:port")
        return value

    def log_level(self, key: str, default: str = "INFO") -> str:
        value = self.text(key, default).upper()
        if value not in _LOG_LEVELS:
            self.problems.append(f"{key}={value!r} is not one of {', '.join(_LOG_LEVELS)}")
        return value

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
