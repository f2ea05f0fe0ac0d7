"""The SDK calls a service acting for many users needs (the web UI): one client's channels shared
by per-user clients (`acting_as`), one page at a time with its cursor, metric histories, and a
download relayed chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelreg import AsyncClient, Client, Page
from modelreg import errors as sdk_errors
from modelreg_local.stack import LocalStack

from tests.integration.credentials import ready_credential_for
from tests.support import ALICE, unique

pytestmark = pytest.mark.integration

BOB = "user:bob-pages@example.com"


async def test_acting_as_shares_the_channels_and_acts_as_each_token(
    stack: LocalStack, tmp_path: Path
) -> None:
    alice = ready_credential_for(stack.addresses.artifacts, ALICE)
    bob = ready_credential_for(stack.addresses.artifacts, BOB, "viewer", "pages")
    async with AsyncClient(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token="",
        cache_dir=tmp_path,
    ) as service:
        with pytest.raises(sdk_errors.Unauthenticated):
            await service.whoami()
        as_alice, as_bob = service.acting_as(alice), service.acting_as(bob)
        assert (await as_alice.whoami()).principal == ALICE
        assert (await as_bob.whoami()).principal == BOB
        await as_alice.close()  # a borrowed client leaves the shared channels open
        assert (await as_bob.whoami()).principal == BOB
        assert (await service.acting_as(alice).whoami()).principal == ALICE
        with pytest.raises(sdk_errors.PermissionDenied):
            await as_bob.create_model(f"pages/{unique()}")


async def test_pages_come_with_their_cursor(stack: LocalStack, tmp_path: Path) -> None:
    token = ready_credential_for(stack.addresses.artifacts, ALICE)
    namespace = unique("pg")
    model = f"{namespace}/{unique('m')}"
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "w.bin").write_bytes(b"weights" * 40_000)
    async with AsyncClient(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=token,
        cache_dir=tmp_path,
    ) as registry:
        await registry.create_model(model)
        other = f"{namespace}/{unique('o')}"
        await registry.create_model(other)
        for accuracy in (0.5, 0.9, 0.7):
            await registry.seal_version(
                (await registry.create_version(model, metrics={"accuracy": accuracy})).name
            )
        await registry.set_alias(model, "staging", 2)

        models: list[str] = []
        token_ = ""
        while True:
            page = await registry.list_models_page(
                namespace, order_by="model_id", page_size=1, page_token=token_
            )
            assert len(page.items) <= 1
            models.extend(m.name for m in page.items)
            token_ = page.next_page_token
            if not token_:
                break
        assert sorted(models) == models
        assert len(models) == 2

        best = await registry.list_versions_page(
            model, filter="metrics.accuracy > 0.6", order_by="metrics.accuracy desc"
        )
        assert [v.number for v in best.items] == [2, 3]
        assert best.next_page_token == ""
        first = await registry.list_versions_page(model, page_size=2)
        rest = await registry.list_versions_page(model, page_size=2, page_token=first.next_page_token)
        assert [v.number for v in (*first.items, *rest.items)] == [1, 2, 3]
        across = await registry.list_versions_page(f"{namespace}/-", page_size=10)
        assert len(across.items) == 3
        with pytest.raises(sdk_errors.InvalidArgument) as bad:
            await registry.list_versions_page(model, filter="metrics.accuracy >")
        assert "position 19" in bad.value.message

        aliases = await registry.list_aliases_page(model)
        assert [(a.name.rpartition("/")[2], a.version_number) for a in aliases.items] == [("staging", 2)]
        events = await registry.list_events_page(model=model, actions="MODEL_VERSION_SEALED", page_size=2)
        assert len(events.items) == 2
        assert events.next_page_token
        more = await registry.list_events_page(
            model=model, actions="MODEL_VERSION_SEALED", page_size=2, page_token=events.next_page_token
        )
        assert [e.resource.rpartition("/")[2] for e in (*events.items, *more.items)] == ["1", "2", "3"]

        pushed = await registry.push(model, tmp_path / "files")
        version = pushed.version
        chunks = [chunk async for chunk in registry.stream_file(version, "w.bin")]
        assert b"".join(chunks) == b"weights" * 40_000
        with pytest.raises(sdk_errors.NotFound):
            async for _ in registry.stream_file(version, "missing.bin"):
                pass
        assert await registry.metric_history(version.name, "accuracy") == []


def test_the_blocking_client_pages_too(stack: LocalStack, tmp_path: Path) -> None:
    token = ready_credential_for(stack.addresses.artifacts, ALICE)
    model = f"pages/{unique('sync')}"
    with Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=token,
        cache_dir=tmp_path,
    ) as registry:
        registry.create_model(model)
        for _ in range(3):
            registry.seal_version(registry.create_version(model).name)
        newest = registry.list_versions_page(model, order_by="number desc", page_size=2)
        assert isinstance(newest, Page)
        assert [v.number for v in newest.items] == [3, 2]
        rest = registry.list_versions_page(
            model, order_by="number desc", page_size=2, page_token=newest.next_page_token
        )
        assert [v.number for v in rest.items] == [1]
        assert [
            m.name for m in registry.list_models_page("pages", filter=f'model_id = "{model[6:]}"').items
        ] == [f"namespaces/{model.replace('/', '/models/')}"]
        assert registry.list_aliases_page(model).items == []
        assert registry.metric_history(f"{model}/1", "loss") == []
