"""Where metrics are served and when traces are exported: the settings, read from the environment."""

from __future__ import annotations

import pytest
from modelreg_artifacts.config import ArtifactSettings
from modelreg_common.config import ConfigError
from modelreg_common.observability.tracing import configure_tracing, exporter_names
from modelreg_metadata.config import MetadataSettings

DATABASE = {"MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1/"}


def test_metrics_default_to_a_loopback_port_per_service_and_can_be_moved_or_turned_off(
    internal_token_file: str,
) -> None:
    artifacts = {
        **DATABASE,
        "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
        "MODELREG_S3_ENDPOINT": "127.0.0.1:9000",
        "MODELREG_S3_ACCESS_KEY": "k",
        "MODELREG_S3_SECRET_KEY": "s",
    }
    assert MetadataSettings.from_environment(DATABASE).metrics_addr == "127.0.0.1:9464"
    assert ArtifactSettings.from_environment(artifacts).metrics_addr == "127.0.0.1:9465"
    moved = {"MODELREG_METRICS_ADDR": "0.0.0.0:9464"}
    assert MetadataSettings.from_environment({**DATABASE, **moved}).metrics_addr == "0.0.0.0:9464"
    off = {**artifacts, "MODELREG_METRICS_ADDR": "off"}
    assert ArtifactSettings.from_environment(off).metrics_addr is None
    with pytest.raises(ConfigError, match="MODELREG_METRICS_ADDR='9464' is not host:port"):
        MetadataSettings.from_environment({**DATABASE, "MODELREG_METRICS_ADDR": "9464"})


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, []),  # no exporter asked for
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_traces_are_exported_only_when_the_environment_names_an_exporter_or_an_endpoint(
    env: dict[str, str], exporters: list[str]
) -> None:
    assert exporter_names(env) == exporters


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "no trace exporter 'zipkin' is installed"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not one of grpc, http/protobuf",
        ),
    ],
)
def test_an_exporter_that_cannot_work_is_a_configuration_error(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        configure_tracing(env, "modelreg-test")
