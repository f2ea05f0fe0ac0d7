"""What the services' code says about their environment: the variables each requires, the
values it accepts, and the names any code reads. Each service's own settings loader
(`<Settings>.from_environment`) is the judge, so the tests follow the code as it changes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelreg_api.addresses import (
    ARTIFACT_ADDR_ENV,
    DEFAULT_ARTIFACT_ADDR,
    DEFAULT_METADATA_ADDR,
    METADATA_ADDR_ENV,
)
from modelreg_api.channels import TLS_ENV, ClientTls, TlsConfigError
from modelreg_artifacts.config import METADATA_TLS_ENV, ArtifactSettings
from modelreg_common.config import ConfigError
from modelreg_metadata.config import MetadataSettings
from modelreg_web.config import WebSettings

from tests.deploy.manifests import REPO

Loader = Callable[[Mapping[str, str]], Any]

# Standard OpenTelemetry variables, read by the OpenTelemetry SDK itself.
OTEL_STANDARD = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    }
)
REQUIRED = re.compile(r"^([A-Z][A-Z0-9_]+) is required")
_NAME_LITERAL = re.compile(r"[\"']((?:MODELREG|OTEL)_[A-Z0-9_]+)[\"']")


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable the code looked up."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class ServiceCode:
    deployment: str
    container: str
    loader: Loader
    port_name: str
    listen_env: str
    default_listen: str


SERVICES = (
    ServiceCode(
        "modelreg-metadata",
        "metadata",
        MetadataSettings.from_environment,
        "grpc",
        METADATA_ADDR_ENV,
        DEFAULT_METADATA_ADDR,
    ),
    ServiceCode(
        "modelreg-artifacts",
        "artifacts",
        ArtifactSettings.from_environment,
        "grpc",
        ARTIFACT_ADDR_ENV,
        DEFAULT_ARTIFACT_ADDR,
    ),
    ServiceCode(
        "modelreg-web", "web", WebSettings.from_environment, "http", "MODELREG_WEB_ADDR", "127.0.0.1:8080"
    ),
)


def load(loader: Loader, env: Mapping[str, str]) -> tuple[Any, list[str], set[str]]:
    """(settings or None, the problems the code found, the variables it read)."""
    recording = RecordingEnv(env)
    try:
        settings = loader(recording)
    except ConfigError as exc:
        return None, list(exc.problems), recording.read
    except TlsConfigError as exc:
        return None, list(exc.problems), recording.read
    except ValueError as exc:  # a loader that stops at its first problem (the web UI's)
        return None, [str(exc)], recording.read
    return settings, [], recording.read


def required_variables(loader: Loader) -> set[str]:
    _, problems, _ = load(loader, {})
    return {m.group(1) for p in problems if (m := REQUIRED.match(p))}


def names_in_code() -> set[str]:
    """Every MODELREG_*/OTEL_* name the services, the API package and the SDK spell out."""
    roots = [
        REPO / "services",
        REPO / "api" / "python" / "modelreg_api",
        REPO / "clients" / "python" / "modelreg",
    ]
    names: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            names.update(_NAME_LITERAL.findall(path.read_text()))
    # Client TLS variables are a prefix plus suffixes (modelreg_api.channels.ClientTls).
    for prefix in (TLS_ENV, METADATA_TLS_ENV):
        recording = RecordingEnv({})
        with contextlib.suppress(TlsConfigError):
            ClientTls.from_environment(recording, prefix=prefix)
        names.update(recording.read)
    return names


def refused(loader: Loader, env: Mapping[str, str], pod_paths: Sequence[str]) -> list[str]:
    """The problems that would stop the service starting with `env`, except those about files
    under `pod_paths` (mounted Secrets: only the pod has them) and a required variable that is
    set but whose file could not be read here (the same problem again)."""
    _, problems, _ = load(loader, env)
    return [
        p
        for p in problems
        if not any(path in p for path in pod_paths)
        and not ((m := REQUIRED.match(p)) and env.get(m.group(1), "").strip())
    ]
