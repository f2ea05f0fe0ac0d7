"""Kill the metadata service between the change and its event: the trail stays exact after restart.

Each test runs its own metadata process on its own database (so the session's service and its
in-process replica never see these writes), with `MODELREG_FAULT_INJECTION` making the process
`os._exit(137)` at the chosen point (services/metadata/modelreg_metadata/faults.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from modelregistry.v1 import event_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from tests.integration.isolated import CRASHED, Isolated
from tests.support import as_actor, error_metadata, events_when, list_all_events

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")


async def _setup(isolated: Isolated) -> tuple[str, str, str]:
    """A model with two sealed versions and `production` at version 1; returns their names."""
    isolated.start()
    async with isolated.stub() as metadata:
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent="namespaces/crash", model_id="m"), metadata=ALICE
        )
        names = []
        for _ in range(2):
            version = await metadata.CreateModelVersion(
                md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
            )
            await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ALICE)
            names.append(version.name)
        alias = f"{model.name}/aliases/production"
        await metadata.SetAlias(md.SetAliasRequest(name=alias, model_version=names[0]), metadata=ALICE)
    isolated.stop()
    return alias, names[0], names[1]


async def _crash_during(
    isolated: Isolated, fault: str, change: Callable[[MetadataStub], Awaitable[object]]
) -> None:
    isolated.start(fault)
    async with isolated.stub() as metadata:
        try:
            await change(metadata)
        except grpc.aio.AioRpcError as exc:
            # Dead before answering (crash-after-commit); crash-after-event-insert happens in the
            # relay, after the response went out.
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
    assert isolated.wait_crashed() == CRASHED


async def _trail(metadata: MetadataStub) -> list[tuple[int, str, str]]:
    events = await list_all_events(metadata)
    return [(e.sequence, e.action, e.resource) for e in events]


@pytest.mark.parametrize("fault", ["crash-after-commit@ALIAS_MOVED", "crash-after-event-insert@ALIAS_MOVED"])
async def test_a_crash_between_the_change_and_its_event_leaves_exactly_one_event(
    isolated: Isolated, fault: str
) -> None:
    alias, _, second = await _setup(isolated)
    await _crash_during(
        isolated,
        fault,
        lambda metadata: metadata.SetAlias(
            md.SetAliasRequest(name=alias, model_version=second), metadata=ALICE
        ),
    )

    isolated.start()  # no fault: start-up relays whatever the crash left in an outbox
    async with isolated.stub() as metadata:
        moved = await metadata.GetAlias(md.GetAliasRequest(name=alias))
        assert moved.model_version == second  # the change was committed before the crash
        trail = await _trail(metadata)
        moves = [(action, resource) for _, action, resource in trail if resource == alias]
        assert moves == [("ALIAS_CREATED", alias), ("ALIAS_MOVED", alias)]  # exactly once
        assert [seq for seq, _, _ in trail] == list(range(1, len(trail) + 1))  # no gap, no duplicate
        (event,) = await list_all_events(metadata, resource=alias, actions=["ALIAS_MOVED"])
        assert event.after["version_number"] == 2

        # The service goes on numbering right after the recovered event.
        await metadata.DeleteAlias(md.DeleteAliasRequest(name=alias), metadata=ALICE)
        (deleted,) = await events_when(metadata, 1, resource=alias, actions=["ALIAS_DELETED"])
        assert deleted.sequence == trail[-1][0] + 1
    isolated.stop()


async def test_a_refused_change_leaves_no_event(isolated: Isolated) -> None:
    alias, first, _ = await _setup(isolated)
    # Any commit would now crash the process; refused changes must not commit anything.
    isolated.start("crash-after-commit")
    async with isolated.stub() as metadata:
        before = await _trail(metadata)
        refusals: list[tuple[Callable[[], Awaitable[object]], grpc.StatusCode]] = [
            (
                lambda: metadata.SubmitModelVersionForReview(
                    md.SubmitModelVersionForReviewRequest(name=first + "0"), metadata=ALICE
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
            (  # not submitted for review
                lambda: metadata.ApproveModelVersion(
                    md.ApproveModelVersionRequest(name=first), metadata=ALICE
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (
                lambda: metadata.SetAlias(
                    md.SetAliasRequest(name=alias, model_version=first, etag="stale"), metadata=ALICE
                ),
                grpc.StatusCode.ABORTED,
            ),
            (  # production points at it
                lambda: metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=first), metadata=ALICE),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (
                lambda: metadata.UnprotectAlias(md.UnprotectAliasRequest(name=alias), metadata=ALICE),
                grpc.StatusCode.NOT_FOUND,
            ),
        ]
        for call, code in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call()
            assert caught.value.code() == code, caught.value.details()
        assert isolated.process is not None
        assert isolated.process.exited() is None  # nothing was committed, so nothing crashed
        assert await _trail(metadata) == before
    isolated.stop()


async def test_sigterm_ends_watch_streams_with_their_last_sequence(isolated: Isolated) -> None:
    """Open streams end at once with UNAVAILABLE instead of holding the drain for the grace period."""
    isolated.env["MODELREG_SHUTDOWN_GRACE_SECONDS"] = "30"
    isolated.start()
    async with isolated.stub() as metadata:
        await metadata.CreateModel(md.CreateModelRequest(parent="namespaces/w", model_id="m"), metadata=ALICE)
        stream = metadata.WatchEvents(md.WatchEventsRequest(namespace="namespaces/w"))
        received = [await stream.read() for _ in range(2)]  # NAMESPACE_CREATED, MODEL_CREATED
        last = received[-1]
        assert isinstance(last, event_pb2.Event)
        assert isolated.process is not None
        assert isolated.process.pid is not None
        started = asyncio.get_running_loop().time()
        os.kill(isolated.process.pid, signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_metadata(caught.value)["last_sequence"] == str(last.sequence)
    assert isolated.process.wait_exited(timeout=30) == 0
    stopped = asyncio.get_running_loop().time() - started
    assert stopped < 15, stopped  # well under the 30 s grace
