"""Short references people type, and client settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelreg.settings import ClientSettings
from modelreg_api import names
from modelreg_api.addresses import ServiceAddresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud/detector/3", "namespaces/fraud/models/detector/versions/3"),
        ("fraud/detector@production", "namespaces/fraud/models/detector/aliases/production"),
        ("namespaces/fraud/models/detector/versions/12", "namespaces/fraud/models/detector/versions/12"),
        ("namespaces/fraud/models/llama-3.1/aliases/top", "namespaces/fraud/models/llama-3.1/aliases/top"),
    ],
)
def test_version_references_short_and_long(text: str, expected: str) -> None:
    ref = names.parse_version_ref(text)
    assert str(ref) == expected
    assert names.parse_version_ref(names.short_ref(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fraud",
        "fraud/detector",
        "fraud/detector/0",
        "fraud/detector/v3",
        "fraud/detector/3/4",
        "fraud/detector@",
        "fraud/detector@Prod",
        "Fraud/detector/3",
        "fraud/../3",
        "fraud/detector@prod/3",
    ],
)
def test_bad_version_references_name_the_field(text: str) -> None:
    with pytest.raises(names.InvalidResourceName) as caught:
        names.parse_version_ref(text, "VERSION")
    assert caught.value.field == "VERSION"


def test_model_references() -> None:
    assert str(names.parse_model_ref("team-a/m.v2")) == "namespaces/team-a/models/m.v2"
    assert names.parse_model_ref("namespaces/team-a/models/x") == names.ModelName("team-a", "x")
    for bad in ("team-a", "team-a/x/1", "team-a/", "/x", "team_a/x"):
        with pytest.raises(names.InvalidResourceName):
            names.parse_model_ref(bad)


def test_settings_come_from_the_environment_with_make_run_defaults(tmp_path: Path) -> None:
    defaults = ClientSettings.from_environment({"HOME": str(tmp_path), "MODELREG_DATA_DIR": str(tmp_path)})
    assert defaults.addresses == ServiceAddresses("127.0.0.1:50051", "127.0.0.1:50052")
    assert defaults.token == ""

    settings = ClientSettings.from_environment(
        {
            "MODELREG_METADATA_ADDR": "meta:1",
            "MODELREG_ARTIFACT_ADDR": "art:2",
            "MODELREG_TOKEN": "mrt_ci-bot",
            "MODELREG_CACHE_DIR": str(tmp_path / "c"),
        }
    )
    assert (settings.addresses.metadata, settings.addresses.artifacts) == ("meta:1", "art:2")
    assert settings.token == "mrt_ci-bot"
    assert settings.cache_dir == tmp_path / "c"
    xdg = ClientSettings.from_environment({"XDG_CACHE_HOME": str(tmp_path)})
    assert xdg.cache_dir == tmp_path / "modelreg"


def test_streams_get_time_for_their_size() -> None:
    settings = ClientSettings(timeout=30, min_transfer_bytes_per_second=1024 * 1024)
    assert settings.stream_timeout(0) == 30
    assert settings.stream_timeout(100 * 1024 * 1024) == 130
