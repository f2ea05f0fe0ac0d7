"""Rules that hold only because the store applies a write's rule to what it holds at that moment:
a manifest never gains two paths that cannot live in one directory tree, however many adds race;
a request key keeps the first request's fingerprint; an alias write that changes nothing writes
nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from modelreg_api import manifests
from modelreg_api.errors import AlreadyExists, FailedPrecondition
from modelreg_metadata import domain
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import Alias, ModelFile, ModelVersion

from tests.contract.conftest import Stores, create_model, create_version, event
from tests.support import unique


def file(path: str, content: str = "x") -> ModelFile:
    return ModelFile(path=path, size_bytes=len(content), sha256=content.encode().hex().ljust(64, "0")[:64])


async def add(
    stores: Stores, version: ModelVersion, *files: ModelFile, replacing: bool = False
) -> ModelVersion:
    """An add of files as the registry makes it (registry/versions.py: the rule inside the write)."""

    def mutate(current: ModelVersion, _: object) -> ModelVersion:
        added = domain.added_to_manifest(current, list(files), replace_existing=replacing)
        if added is None:
            return current
        return replace(current, files=added, update_time=now(), etag=new_etag())

    _, after = await stores.versions.update_version(
        version.name, mutate, "", event(Action.MODEL_VERSION_FILE_ADDED)
    )
    return after


async def test_racing_adds_of_a_file_and_its_directory_land_one(stores: Stores) -> None:
    for _ in range(3):
        version = await create_version(stores, await create_model(stores))
        outcomes = await asyncio.gather(
            add(stores, version, file("dir")),
            add(stores, version, file("dir/file")),
            add(stores, version, file("DIR")),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(e, FailedPrecondition) for e in refused), refused
        assert all(e.reason == manifests.PATH_CONFLICT for e in refused if isinstance(e, FailedPrecondition))
        stored = [f.path for f in (await stores.versions.get_version(version.name)).files]
        # Each pair conflicts (a file and its directory; one name on macOS and Windows): one lands.
        assert stored in (["dir"], ["dir/file"], ["DIR"]), stored
        assert len(refused) == 2


async def test_racing_adds_of_other_content_at_one_path_land_one_unless_replacing(stores: Stores) -> None:
    version = await create_version(stores, await create_model(stores))
    outcomes = await asyncio.gather(
        *(add(stores, version, file("model.bin", f"content {i}")) for i in range(4)), return_exceptions=True
    )
    assert sum(isinstance(o, AlreadyExists) for o in outcomes) == 3
    replaced = await add(stores, version, file("model.bin", "final"), replacing=True)
    assert [f.sha256 for f in replaced.files] == [file("model.bin", "final").sha256]
    actions = await stores.events_of(str(version.name))
    assert actions == ["MODEL_VERSION_CREATED", "MODEL_VERSION_FILE_ADDED", "MODEL_VERSION_FILE_ADDED"]


async def test_a_request_key_keeps_the_first_fingerprint_even_when_claims_race(stores: Stores) -> None:
    key = f"CreateModelVersion namespaces/a/models/b {unique('request')}"
    recorded = await asyncio.gather(*(stores.requests.claim(key, f"fingerprint {i % 3}") for i in range(9)))
    assert len(set(recorded)) == 1
    assert recorded[0].startswith("fingerprint ")
    assert await stores.requests.claim(key, "another") == recorded[0]
    other = await stores.requests.claim(key + "-2", "another")
    assert other == "another"


async def test_an_alias_change_that_returns_the_alias_as_it_is_writes_nothing(stores: Stores) -> None:
    model = await create_model(stores)
    version = await create_version(stores, model)
    name = model.name.alias("staging")

    async def point(current: Alias | None, _: object) -> Alias:
        if current is not None and current.version_number == version.number:
            return current
        return Alias(name=name, version_number=version.number, update_time=now(), etag=new_etag())

    _, first = await stores.models.change_alias(name, point, "", event(Action.ALIAS_CREATED))
    before, again = await stores.models.change_alias(name, point, "", event(Action.ALIAS_MOVED))
    assert first is not None
    assert again is not None
    assert again.etag == first.etag
    assert before is again
    assert (await stores.models.get_alias(name)).etag == first.etag
    assert await stores.events_of(str(name)) == ["ALIAS_CREATED"]
