"""Resource names and file paths: what parses, and what is refused with which field."""

from __future__ import annotations

import pytest
from modelreg_api import names
from modelreg_api.errors import MAX_QUOTED_CHARS, InvalidArgument, rich_status


def test_round_trip_of_every_name_kind() -> None:
    version = names.parse_model_version_name("namespaces/team-a/models/llama-3.1-8b/versions/12")
    assert (version.namespace, version.model, version.number) == ("team-a", "llama-3.1-8b", 12)
    assert str(version) == "namespaces/team-a/models/llama-3.1-8b/versions/12"
    alias = names.parse_alias_name("namespaces/team-a/models/m/aliases/production")
    assert str(alias.model_name) == "namespaces/team-a/models/m"
    assert names.parse_version_reference(str(alias)) == alias
    assert names.parse_version_reference(str(version)) == version


@pytest.mark.parametrize(
    "name",
    [
        "",
        "namespaces/team-a",
        "namespaces/team-a/models/",
        "namespaces/Team/models/m",
        "namespaces/team-a/models/m/versions/0",
        "namespaces/team-a/models/m/versions/01",
        "namespaces/team-a/models/m/versions/-1",
        "namespaces/team-a/models/m/versions/1.5",
        "namespaces/team-a/models/m/versions/٣",
        "namespaces/team-a/models/m/versions/99999999999999999999",
        "namespaces/team-a/models/m/revisions/1",
        "namespaces/team-a/models/../versions/1",
        "namespaces/team-a/models/m/versions/1/extra",
    ],
)
def test_malformed_version_names_name_the_field(name: str) -> None:
    with pytest.raises(names.InvalidResourceName) as caught:
        names.parse_model_version_name(name, "model_version")
    assert caught.value.field == "model_version"


@pytest.mark.parametrize(
    "path", ["model.bin", "weights/part-00001.safetensors", "ünïcode/ファイル.txt", "a" * 1024]
)
def test_good_file_paths(path: str) -> None:
    assert names.check_file_path(path) == path


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/", "a\\b", "a\tb", "\x7f", "é" * 600]
)
def test_bad_file_paths(path: str) -> None:
    with pytest.raises(names.InvalidResourceName) as caught:
        names.check_file_path(path, "spec.path")
    assert caught.value.field == "spec.path"


def test_a_long_invalid_name_is_quoted_by_a_short_prefix() -> None:
    long_id = "X" * 10_000
    for parse in (
        lambda: names.check_model_id(long_id),
        lambda: names.parse_model_name(f"namespaces/a/models/{long_id}"),
        lambda: names.parse_model_version_name(f"namespaces/a/models/m/versions/{'9' * 10_000}"),
        lambda: names.check_file_path("a\\" + "x" * 1000),
    ):
        with pytest.raises(names.InvalidResourceName) as caught:
            parse()
        assert len(caught.value.message) < MAX_QUOTED_CHARS + 200
        assert "characters)" in caught.value.message  # how long it really was
    # Whatever a raiser quoted, the status stays small enough for the trailers.
    _, message, details = rich_status(InvalidArgument("f", "y" * 100_000, metadata={"v": "z" * 100_000}))
    assert len(message) <= 1024
    assert len(details) < 4096
