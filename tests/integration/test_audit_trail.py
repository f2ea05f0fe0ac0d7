"""The audit trail through gRPC: an event for every mutation, ListEvents, WatchEvents, point in time."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format, timestamp_pb2
from modelreg_api.headers import WATCH_AFTER_SEQUENCE
from modelreg_metadata.audit.events import Action
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import event_pb2, model_pb2
from modelregistry.v1 import metadata_service_pb2 as md

from tests.support import as_actor, error_info, events_when, list_all_events, unique, upload

if TYPE_CHECKING:
    from tests.support import AccessStub, ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration

ALICE = as_actor("user:alice@example.com")
BOB = as_actor("user:bob@example.com")


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def plain(event: event_pb2.Event) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    return (
        event.action,
        event.resource,
        json_format.MessageToDict(event.before),
        json_format.MessageToDict(event.after),
    )


@dataclass
class Step:
    """One mutation and the event it must leave: action, resource and fields before/after.

    `before`/`after` list the changed fields that must be present with these values (the
    comparison is exact per listed field; fields not listed are checked to be absent when
    `exact` is set).
    """

    call: Callable[[], Awaitable[object]]
    action: str
    resource: str
    before: dict[str, Any]
    after: dict[str, Any]
    exact: bool = True


async def test_every_mutation_appends_one_event_with_its_before_and_after(
    metadata: MetadataStub, artifacts: ArtifactStub, access: AccessStub
) -> None:
    ns = unique("audit")
    namespace = f"namespaces/{ns}"
    model = f"{namespace}/models/m"
    v1, v2 = f"{model}/versions/1", f"{model}/versions/2"
    production = f"{model}/aliases/production"
    data = b"weights"
    digest = hashlib.sha256(data).hexdigest()
    retrained = b"retrained weights"
    retrained_digest = hashlib.sha256(retrained).hexdigest()

    grant_bob = acc.GrantRoleRequest(parent=namespace, principal="user:bob@example.com", role=acc.ROLE_VIEWER)
    revoke_bob = acc.RevokeRoleRequest(
        parent=namespace, principal="user:bob@example.com", role=acc.ROLE_VIEWER
    )

    def call(
        method: str, request: object, actor: Sequence[tuple[str, str]] = ALICE
    ) -> Callable[[], Awaitable[object]]:
        return lambda: getattr(metadata, method)(request, metadata=actor)

    steps = [
        Step(
            call(
                "CreateNamespace",
                md.CreateNamespaceRequest(namespace_id=ns, namespace=model_pb2.Namespace(description="d")),
            ),
            "NAMESPACE_CREATED",
            namespace,
            {},
            {"description": "d", "display_name": ns, "allow_self_approval": False, "labels": {}},
            exact=False,
        ),
        Step(
            call(
                "UpdateNamespace",
                md.UpdateNamespaceRequest(
                    namespace=model_pb2.Namespace(
                        name=namespace, allow_self_approval=True, labels={"team": "x"}
                    ),
                    update_mask=mask("allow_self_approval", "labels"),
                ),
            ),
            "NAMESPACE_UPDATED",
            namespace,
            {"allow_self_approval": False, "labels": {}},
            {"allow_self_approval": True, "labels": {"team": "x"}},
        ),
        Step(
            call("CreateModel", md.CreateModelRequest(parent=namespace, model_id="m")),
            "MODEL_CREATED",
            model,
            {},
            {"display_name": "m", "create_actor": "user:alice@example.com", "deleted": False},
            exact=False,
        ),
        Step(
            call(
                "UpdateModel",
                md.UpdateModelRequest(
                    model=model_pb2.Model(name=model, description="fraud"), update_mask=mask("description")
                ),
            ),
            "MODEL_UPDATED",
            model,
            {"description": ""},
            {"description": "fraud"},
        ),
        Step(
            call(
                "CreateModelVersion",
                md.CreateModelVersionRequest(
                    parent=model, model_version=model_pb2.ModelVersion(tags={"a": "1", "k.x": "v"})
                ),
            ),
            "MODEL_VERSION_CREATED",
            v1,
            {},
            {
                "tags": {"a": "1", "k.x": "v"},
                "state": "PENDING",
                "review_state": "NOT_SUBMITTED",
                "files": [],
            },
            exact=False,
        ),
        Step(
            call(
                "UpdateModelVersion",
                md.UpdateModelVersionRequest(
                    model_version=model_pb2.ModelVersion(name=v1, tags={"a": "2", "k.x": "v"}),
                    update_mask=mask("tags"),
                ),
            ),
            "MODEL_VERSION_UPDATED",
            v1,
            {"tags": {"a": "1"}},
            {"tags": {"a": "2"}},
        ),
        Step(
            call(
                "LogMetrics",
                md.LogMetricsRequest(model_version=v1, points=[model_pb2.MetricPoint(key="acc", value=0.9)]),
            ),
            "MODEL_VERSION_METRICS_LOGGED",
            v1,
            {"metrics": {}},
            {"metrics": {"acc": 0.9}},
        ),
        Step(
            lambda: upload(artifacts, v1, "model.bin", data),
            "MODEL_VERSION_FILE_ADDED",
            v1,
            {"files": []},
            {"files": [{"path": "model.bin", "size_bytes": len(data), "sha256": digest}]},
            exact=False,
        ),
        Step(
            lambda: upload(artifacts, v1, "model.bin", retrained, replace=True),
            "MODEL_VERSION_FILE_REPLACED",
            v1,
            {"files": [{"path": "model.bin", "size_bytes": len(data), "sha256": digest}]},
            {"files": [{"path": "model.bin", "size_bytes": len(retrained), "sha256": retrained_digest}]},
            exact=False,
        ),
        Step(
            call("SealModelVersion", md.SealModelVersionRequest(name=v1)),
            "MODEL_VERSION_SEALED",
            v1,
            {"state": "PENDING"},
            {"state": "READY"},
        ),
        Step(
            call("SubmitModelVersionForReview", md.SubmitModelVersionForReviewRequest(name=v1, comment="c1")),
            "MODEL_VERSION_REVIEW_SUBMITTED",
            v1,
            {"review_state": "NOT_SUBMITTED"},
            {
                "review_state": "PENDING",
                "reviews": [{"decision": "SUBMITTED", "actor": "user:alice@example.com", "comment": "c1"}],
            },
            exact=False,
        ),
        Step(
            call("RejectModelVersion", md.RejectModelVersionRequest(name=v1, comment="no"), BOB),
            "MODEL_VERSION_REJECTED",
            v1,
            {"review_state": "PENDING"},
            {"review_state": "REJECTED"},
            exact=False,
        ),
        Step(
            call("SubmitModelVersionForReview", md.SubmitModelVersionForReviewRequest(name=v1)),
            "MODEL_VERSION_REVIEW_SUBMITTED",
            v1,
            {"review_state": "REJECTED"},
            {"review_state": "PENDING"},
            exact=False,
        ),
        Step(
            call(
                "ApproveModelVersion", md.ApproveModelVersionRequest(name=v1)
            ),  # self-approval is allowed here
            "MODEL_VERSION_APPROVED",
            v1,
            {"review_state": "PENDING"},
            {"review_state": "APPROVED"},
            exact=False,
        ),
        Step(
            call("SetAlias", md.SetAliasRequest(name=production, model_version=v1)),
            "ALIAS_CREATED",
            production,
            {},
            {"version_number": 1, "update_actor": "user:alice@example.com"},
        ),
        Step(
            call("CreateModelVersion", md.CreateModelVersionRequest(parent=model)),
            "MODEL_VERSION_CREATED",
            v2,
            {},
            {"state": "PENDING"},
            exact=False,
        ),
        Step(
            call("SetAlias", md.SetAliasRequest(name=production, model_version=v2), BOB),
            "ALIAS_MOVED",
            production,
            {"version_number": 1, "update_actor": "user:alice@example.com"},
            {"version_number": 2, "update_actor": "user:bob@example.com"},
        ),
        Step(
            call(
                "ProtectAlias",
                md.ProtectAliasRequest(
                    protection=model_pb2.AliasProtection(name=production, metric_gate="metrics.acc > 0.5")
                ),
            ),
            "ALIAS_PROTECTED",
            production,
            {},
            {
                "metric_gate": "metrics.acc > 0.5",
                "no_regression": [],
                "update_actor": "user:alice@example.com",
            },
        ),
        Step(
            call("UnprotectAlias", md.UnprotectAliasRequest(name=production)),
            "ALIAS_UNPROTECTED",
            production,
            {
                "metric_gate": "metrics.acc > 0.5",
                "no_regression": [],
                "update_actor": "user:alice@example.com",
            },
            {},
        ),
        Step(
            call("DeleteAlias", md.DeleteAliasRequest(name=production)),
            "ALIAS_DELETED",
            production,
            {"version_number": 2, "update_actor": "user:bob@example.com"},
            {},
        ),
        Step(
            call("ArchiveModelVersion", md.ArchiveModelVersionRequest(name=v1)),
            "MODEL_VERSION_ARCHIVED",
            v1,
            {"state": "READY"},
            {"state": "ARCHIVED"},
        ),
        Step(
            call("UnarchiveModelVersion", md.UnarchiveModelVersionRequest(name=v1)),
            "MODEL_VERSION_UNARCHIVED",
            v1,
            {"state": "ARCHIVED"},
            {"state": "READY"},
        ),
        Step(
            call("DeleteModelVersion", md.DeleteModelVersionRequest(name=v2)),
            "MODEL_VERSION_DELETED",
            v2,
            {"deleted": False},
            {"deleted": True},
        ),
        Step(
            call("UndeleteModelVersion", md.UndeleteModelVersionRequest(name=v2)),
            "MODEL_VERSION_UNDELETED",
            v2,
            {"deleted": True},
            {"deleted": False},
        ),
        Step(
            call("DeleteModelVersion", md.DeleteModelVersionRequest(name=v2)),
            "MODEL_VERSION_DELETED",
            v2,
            {"deleted": False},
            {"deleted": True},
        ),
        Step(
            call("PurgeModelVersion", md.PurgeModelVersionRequest(name=v2), BOB),
            "MODEL_VERSION_PURGED",
            v2,
            {"purged": False},
            {"purged": True},
        ),
        Step(
            call("DeleteModel", md.DeleteModelRequest(name=model)),
            "MODEL_DELETED",
            model,
            {"deleted": False},
            {"deleted": True},
        ),
        Step(
            call("UndeleteModel", md.UndeleteModelRequest(name=model)),
            "MODEL_UNDELETED",
            model,
            {"deleted": True},
            {"deleted": False},
        ),
        Step(
            lambda: access.GrantRole(grant_bob, metadata=ALICE),
            "ROLE_GRANTED",
            f"{namespace}/roleBindings/viewer/user:bob@example.com",
            {},
            {"principal": "user:bob@example.com", "role": "viewer"},
        ),
        Step(
            lambda: access.RevokeRole(revoke_bob, metadata=ALICE),
            "ROLE_REVOKED",
            f"{namespace}/roleBindings/viewer/user:bob@example.com",
            {"principal": "user:bob@example.com", "role": "viewer"},
            {},
        ),
    ]
    # API tokens are in no namespace; their events have a test of their own (test_identity.py).
    in_namespaces = {a.value for a in Action} - {"API_TOKEN_CREATED", "API_TOKEN_REVOKED"}
    assert {s.action for s in steps} == in_namespaces, "every kind of mutation is in the table"

    for step in steps:
        await step.call()
    events = await events_when(metadata, len(steps), namespace=namespace)

    assert len(events) == len(steps), [e.action for e in events]
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))
    for step, event in zip(steps, events, strict=True):
        action, resource, before, after = plain(event)
        assert (action, resource) == (step.action, step.resource)
        for expected, got in ((step.before, before), (step.after, after)):
            for field, value in expected.items():
                if field in ("files", "reviews") and not step.exact:
                    assert [{k: v for k, v in item.items() if k in value[0]} for item in got[field]] == value
                else:
                    assert got.get(field) == value, (step.action, field, got)
            if step.exact:
                assert set(got) == set(expected), (step.action, got)
        assert event.id
        assert event.time.seconds > 0
        assert event.actor in ("user:alice@example.com", "user:bob@example.com")
        assert "update_time" not in after
        assert "etag" not in after


async def test_events_carry_the_request_id_and_cannot_be_changed(metadata: MetadataStub) -> None:
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{unique('audit')}", model_id="m"),
        metadata=as_actor("dave", request_id="req-42"),
    )
    (event,) = await events_when(metadata, 1, resource=model.name)
    assert (event.action, event.actor, event.request_id) == ("MODEL_CREATED", "user:dave", "req-42")
    assert event.authentication.startswith("token:")
    # The API has no method that updates or deletes an event.
    service = md.DESCRIPTOR.services_by_name["MetadataService"]
    event_methods = [m.name for m in service.methods if "Event" in m.name]
    assert sorted(event_methods) == ["ListEvents", "WatchEvents"]


async def test_list_events_filters_and_pages(metadata: MetadataStub) -> None:
    ns = unique("audit")
    namespace = f"namespaces/{ns}"
    models = []
    for actor in ("alice", "bob"):
        created = await metadata.CreateModel(
            md.CreateModelRequest(parent=namespace, model_id=unique()), metadata=as_actor(actor)
        )
        models.append(created.name)
        for _ in range(3):
            await metadata.CreateModelVersion(
                md.CreateModelVersionRequest(parent=created.name), metadata=as_actor(actor)
            )
    everything = await events_when(metadata, 9, namespace=namespace)  # the namespace, 2 models, 6 versions
    assert [e.action for e in everything].count("MODEL_VERSION_CREATED") == 6
    assert everything[0].action == "NAMESPACE_CREATED"

    by_model = await list_all_events(metadata, model=models[1])
    assert [e.resource for e in by_model] == [models[1], *(f"{models[1]}/versions/{n}" for n in (1, 2, 3))]
    by_actor = await list_all_events(metadata, namespace=namespace, actor="user:bob")
    assert {e.actor for e in by_actor} == {"user:bob"}
    assert len(by_actor) == 4
    by_action = await list_all_events(metadata, namespace=namespace, actions=["MODEL_CREATED"])
    assert [e.resource for e in by_action] == models
    by_resource = await list_all_events(metadata, resource=f"{models[0]}/versions/2")
    assert [e.action for e in by_resource] == ["MODEL_VERSION_CREATED"]

    middle = everything[4].time
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(middle.ToDatetime())
    later = await list_all_events(metadata, namespace=namespace, start_time=start)
    assert later
    assert all(e.time.ToDatetime() >= middle.ToDatetime() for e in later)
    end = timestamp_pb2.Timestamp()
    end.FromDatetime(middle.ToDatetime())
    earlier = await list_all_events(metadata, namespace=namespace, end_time=end)
    assert {e.sequence for e in earlier} | {e.sequence for e in later} == {e.sequence for e in everything}

    pages: list[event_pb2.Event] = []
    token = ""
    while True:
        page = await metadata.ListEvents(
            md.ListEventsRequest(namespace=namespace, page_size=2, page_token=token)
        )
        assert len(page.events) <= 2
        pages += page.events
        token = page.next_page_token
        if not token:
            break
    assert [e.sequence for e in pages] == [e.sequence for e in everything]
    after = await list_all_events(metadata, namespace=namespace, after_sequence=everything[6].sequence)
    assert [e.sequence for e in after] == [e.sequence for e in everything[7:]]


async def test_list_events_newest_first_is_the_exact_reverse_page_by_page(metadata: MetadataStub) -> None:
    """What changed recently, first: `order_by="sequence desc"` pages down the trail, and all its
    pages together are the oldest-first listing reversed. `after_sequence` still means "only
    later events"; a page token continues only in the order it was made for."""
    ns = unique("recent")
    namespace = f"namespaces/{ns}"
    created = await metadata.CreateModel(
        md.CreateModelRequest(parent=namespace, model_id="m"), metadata=ALICE
    )
    for _ in range(4):
        await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=created.name), metadata=BOB)
    oldest = await events_when(metadata, 6, namespace=namespace)  # the namespace, the model, 4 versions

    newest: list[event_pb2.Event] = []
    token = ""
    while True:
        page = await metadata.ListEvents(
            md.ListEventsRequest(namespace=namespace, page_size=2, page_token=token, order_by="sequence desc")
        )
        assert len(page.events) <= 2
        newest += page.events
        token = page.next_page_token
        if not token:
            break
    assert [e.sequence for e in newest] == [e.sequence for e in reversed(oldest)]
    assert newest[0].resource == f"{created.name}/versions/4"  # the latest change comes first
    assert newest[0] == oldest[-1]  # the whole event, as oldest first lists it

    later = await list_all_events(
        metadata, namespace=namespace, after_sequence=oldest[2].sequence, order_by="sequence DESC"
    )
    assert [e.sequence for e in later] == [e.sequence for e in reversed(oldest[3:])]
    ascending = await list_all_events(metadata, namespace=namespace, order_by="sequence asc")
    assert [e.sequence for e in ascending] == [e.sequence for e in oldest]

    # A token of one order is refused in the other, naming the token, not silently re-read.
    for made, used in (("sequence desc", ""), ("", "sequence desc")):
        first = await metadata.ListEvents(
            md.ListEventsRequest(namespace=namespace, page_size=2, order_by=made)
        )
        assert first.next_page_token
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.ListEvents(
                md.ListEventsRequest(
                    namespace=namespace, page_size=2, order_by=used, page_token=first.next_page_token
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value)[1] == ["page_token"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"actions": ["MODEL_EXPLODED"]}, "actions[0]"),
        ({"order_by": "time desc"}, "order_by"),
        ({"order_by": "sequence desc, time"}, "order_by"),
        ({"order_by": "sequence sideways"}, "order_by"),
        ({"namespace": "teams/x"}, "namespace"),
        ({"model": "namespaces/x"}, "model"),
        ({"namespace": "namespaces/a", "model": "namespaces/b/models/m"}, "model"),
        ({"page_token": "garbage"}, "page_token"),
        ({"page_size": -1}, "page_size"),
    ],
)
async def test_bad_event_queries_name_the_field(
    metadata: MetadataStub, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListEvents(md.ListEventsRequest(**request_fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == [field]


# WatchEvents


async def _latest_sequence(metadata: MetadataStub) -> int:
    """The sequence of a fresh event of our own: watchers start after it."""
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{unique('watch')}", model_id="marker"), metadata=ALICE
    )
    (event,) = await events_when(metadata, 1, resource=model.name)
    return event.sequence


class Watcher:
    """A client that follows the trail, disconnecting and resuming from its last sequence."""

    def __init__(self, metadata: MetadataStub, start: int, namespace: str = "", replay: int = 0):
        self.metadata = metadata
        self.last = start
        self.namespace = namespace
        self.replay = replay  # resume this many sequences early (a client that lost its last acks)
        self.received: list[event_pb2.Event] = []
        self.connections = 0

    async def follow(self, until: Callable[[list[event_pb2.Event]], bool], per_connection: int) -> None:
        while not until(self.received):
            self.connections += 1
            call = self.metadata.WatchEvents(
                md.WatchEventsRequest(
                    after_sequence=max(0, self.last - self.replay), namespace=self.namespace
                )
            )
            taken = 0
            async for event in call:
                self.received.append(event)
                self.last = max(self.last, event.sequence)
                taken += 1
                if taken >= per_connection or until(self.received):
                    break
            call.cancel()  # disconnect; the next round resumes from `last`

    def unique_in_order(self) -> list[event_pb2.Event]:
        seen: dict[int, event_pb2.Event] = {}
        for event in self.received:
            seen.setdefault(event.sequence, event)
        return [seen[s] for s in sorted(seen)]


async def test_watchers_that_reconnect_see_every_event_once_after_deduplication(
    metadata: MetadataStub,
) -> None:
    start = await _latest_sequence(metadata)
    ns = unique("watch")
    namespace = f"namespaces/{ns}"
    model = f"{namespace}/models/m"
    mutations = 40

    async def produce() -> None:
        await metadata.CreateModel(md.CreateModelRequest(parent=namespace, model_id="m"), metadata=ALICE)
        for i in range(mutations - 2):  # with NAMESPACE_CREATED and MODEL_CREATED: `mutations` events
            await metadata.CreateModelVersion(
                md.CreateModelVersionRequest(
                    parent=model, model_version=model_pb2.ModelVersion(description=str(i))
                ),
                metadata=ALICE,
            )

    def done(received: list[event_pb2.Event]) -> bool:
        return len({e.sequence for e in received if e.resource.startswith(namespace)}) >= mutations

    everything = Watcher(metadata, start)  # no filter: must see consecutive sequence numbers
    filtered = Watcher(metadata, start, namespace=namespace)
    replaying = Watcher(metadata, start, namespace=namespace, replay=3)
    watchers = [everything, filtered, replaying]
    await asyncio.wait_for(
        asyncio.gather(
            produce(),
            everything.follow(done, per_connection=7),
            filtered.follow(done, per_connection=5),
            replaying.follow(done, per_connection=9),
        ),
        timeout=60,
    )

    expected = await events_when(metadata, mutations, namespace=namespace)
    assert len(expected) == mutations
    for watcher in watchers:
        assert watcher.connections > 1  # it really disconnected and resumed
        mine = [e for e in watcher.unique_in_order() if e.resource.startswith(namespace)]
        assert [e.sequence for e in mine] == [e.sequence for e in expected]
        assert [e.id for e in mine] == [e.id for e in expected]
    sequences = [e.sequence for e in everything.unique_in_order()]
    assert sequences == list(range(start + 1, sequences[-1] + 1)), "no gaps in the trail"
    assert len(replaying.received) > len(replaying.unique_in_order())  # it did get duplicates


async def test_watch_from_now_delivers_only_later_events(metadata: MetadataStub) -> None:
    before = await _latest_sequence(metadata)
    call = metadata.WatchEvents(md.WatchEventsRequest(from_now=True, actions=["MODEL_CREATED"]))
    await asyncio.sleep(0.3)  # the stream is open and positioned at "now"
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{unique('watch')}", model_id="later"), metadata=ALICE
    )
    event = await asyncio.wait_for(call.read(), timeout=10)
    start = dict(await call.initial_metadata() or ()).get(WATCH_AFTER_SEQUENCE)
    call.cancel()
    assert isinstance(event, event_pb2.Event)
    assert (event.action, event.resource) == ("MODEL_CREATED", model.name)
    assert event.sequence > before
    # The stream said where "now" was, before any event: between the two reads of the trail.
    assert isinstance(start, str)
    assert before <= int(start) < event.sequence


async def test_the_trail_lists_a_change_as_soon_as_it_is_acknowledged(metadata: MetadataStub) -> None:
    for _ in range(5):
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{unique('ryw')}", model_id="m"), metadata=ALICE
        )
        version = await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(parent=model.name), metadata=ALICE
        )
        page = await metadata.ListEvents(md.ListEventsRequest(model=model.name))  # no waiting
        assert [e.action for e in page.events][-1:] == ["MODEL_VERSION_CREATED"]
        assert page.events[-1].resource == version.name


async def test_from_now_starts_after_every_change_already_acknowledged(metadata: MetadataStub) -> None:
    # The events of a change reach the trail a moment after its response; "now" still means
    # after that change, so a client that creates and then watches sees only what follows.
    for _ in range(5):
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{unique('now')}", model_id="m"), metadata=ALICE
        )
        call = metadata.WatchEvents(md.WatchEventsRequest(from_now=True, model=model.name))
        await asyncio.wait_for(call.initial_metadata(), timeout=10)  # positioned
        await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name), metadata=ALICE)
        event = await asyncio.wait_for(call.read(), timeout=10)
        call.cancel()
        assert isinstance(event, event_pb2.Event)
        assert event.action == "MODEL_VERSION_CREATED"


async def test_a_watch_announces_its_start_before_any_event(metadata: MetadataStub) -> None:
    call = metadata.WatchEvents(md.WatchEventsRequest(after_sequence=3, resource="namespaces/none/models/x"))
    metadata_sent = await asyncio.wait_for(call.initial_metadata(), timeout=10)
    call.cancel()
    assert dict(metadata_sent or ()).get(WATCH_AFTER_SEQUENCE) == "3"


# Point in time


def at(moment: timestamp_pb2.Timestamp, delta: timedelta = timedelta(0)) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.ToDatetime() + delta)
    return stamp


async def test_which_version_an_alias_pointed_at_and_a_version_at_any_time(metadata: MetadataStub) -> None:
    model = (
        await metadata.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{unique('pit')}", model_id="m"), metadata=ALICE
        )
    ).name
    alias = f"{model}/aliases/production"
    versions = []
    for i in range(3):
        version = await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model, model_version=model_pb2.ModelVersion(description=f"v{i + 1}")
            ),
            metadata=ALICE,
        )
        versions.append(version.name)
    for number in (1, 2, 1, 3):
        await asyncio.sleep(0.01)  # distinct milliseconds
        await metadata.SetAlias(
            md.SetAliasRequest(name=alias, model_version=f"{model}/versions/{number}"), metadata=BOB
        )
    await asyncio.sleep(0.01)
    await metadata.DeleteAlias(md.DeleteAliasRequest(name=alias), metadata=BOB)
    moves = await events_when(metadata, 5, resource=alias)
    assert [e.action for e in moves] == [
        "ALIAS_CREATED",
        "ALIAS_MOVED",
        "ALIAS_MOVED",
        "ALIAS_MOVED",
        "ALIAS_DELETED",
    ]

    async def pointed_at(moment: timestamp_pb2.Timestamp) -> int | None:
        try:
            state = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=alias, time=moment))
        except grpc.aio.AioRpcError as exc:
            absent = (exc.code(), error_info(exc)[0])
            if absent != (grpc.StatusCode.NOT_FOUND, "NOT_FOUND_AT_TIME"):
                raise
            return None
        assert state.WhichOneof("state") == "alias"
        return state.alias.version_number

    assert await pointed_at(at(moves[0].time, -timedelta(milliseconds=1))) is None
    for move, number in zip(moves, (1, 2, 1, 3), strict=False):
        assert await pointed_at(move.time) == number  # the move itself counts at its time
        assert await pointed_at(at(move.time, timedelta(microseconds=500))) == number
    assert await pointed_at(moves[-1].time) is None  # deleted
    state = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=alias, time=moves[2].time))
    assert (state.as_of.sequence, state.alias.update_actor) == (moves[2].sequence, "user:bob@example.com")

    # A version's state at a time: its metrics and lifecycle as they were.
    name = versions[0]
    await metadata.LogMetrics(
        md.LogMetricsRequest(model_version=name, points=[model_pb2.MetricPoint(key="acc", value=0.5)])
    )
    await asyncio.sleep(0.01)
    await metadata.LogMetrics(
        md.LogMetricsRequest(model_version=name, points=[model_pb2.MetricPoint(key="acc", value=0.7, step=1)])
    )
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=name))
    history = await events_when(metadata, 4, resource=name)
    assert [e.action for e in history] == [
        "MODEL_VERSION_CREATED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_METRICS_LOGGED",
        "MODEL_VERSION_SEALED",
    ]
    expected = [
        ({}, model_pb2.MODEL_VERSION_STATE_PENDING),
        ({"acc": 0.5}, model_pb2.MODEL_VERSION_STATE_PENDING),
    ]
    expected += [
        ({"acc": 0.7}, model_pb2.MODEL_VERSION_STATE_PENDING),
        ({"acc": 0.7}, model_pb2.MODEL_VERSION_STATE_READY),
    ]
    for event, (metrics, lifecycle) in zip(history, expected, strict=True):
        state = await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=name, time=event.time))
        version = state.model_version
        assert (dict(version.metrics), version.state, version.description) == (metrics, lifecycle, "v1")
        assert state.as_of.id == event.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.GetStateAtTime(
            md.GetStateAtTimeRequest(name=name, time=at(history[0].time, -timedelta(seconds=1)))
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.GetStateAtTime(md.GetStateAtTimeRequest(name=name))
    assert error_info(caught.value)[1] == ["time"]
