"""Audit events: what one committed change looks like in the trail, and which events a reader wants.

An event is built from the resource before and after the change, inside the write that commits
the change (see audit/outbox.py for how it reaches the trail). It records only the fields that
changed, as JSON-safe values:
- maps of user keys (tags, labels, metrics) list only the keys that changed; a key present in
  `before` and missing from `after` was removed;
- the manifest (`files`) lists only the entries that changed, by path;
- the review history (`reviews`) lists only the steps appended;
- a creation carries the whole initial state in `after`, so replaying a resource's events from its
  creation rebuilds it at any point in time (audit/replay.py).
`update_time` and `etag` change with every write: the event's time stands for the first, and the
second is not history.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

from modelreg_api.errors import InvalidArgument, quoted
from modelreg_api.names import ModelName, NamespaceName
from modelreg_common.context import current_caller, current_request_id

from modelreg_metadata import domain
from modelreg_metadata.domain import ModelFile

Json = dict[str, Any]

MAP_FIELDS = frozenset({"tags", "labels", "metrics"})
NOT_HISTORY = frozenset({"name", "update_time", "etag", "aliases", "latest_version_number", "protection"})
MAX_RESOURCE_CHARS = 512


class Action(enum.StrEnum):
    NAMESPACE_CREATED = "NAMESPACE_CREATED"
    NAMESPACE_UPDATED = "NAMESPACE_UPDATED"
    MODEL_CREATED = "MODEL_CREATED"
    MODEL_UPDATED = "MODEL_UPDATED"
    MODEL_DELETED = "MODEL_DELETED"
    MODEL_UNDELETED = "MODEL_UNDELETED"
    MODEL_VERSION_CREATED = "MODEL_VERSION_CREATED"
    MODEL_VERSION_UPDATED = "MODEL_VERSION_UPDATED"
    MODEL_VERSION_DELETED = "MODEL_VERSION_DELETED"
    MODEL_VERSION_UNDELETED = "MODEL_VERSION_UNDELETED"
    MODEL_VERSION_PURGED = "MODEL_VERSION_PURGED"
    MODEL_VERSION_ARCHIVED = "MODEL_VERSION_ARCHIVED"
    MODEL_VERSION_UNARCHIVED = "MODEL_VERSION_UNARCHIVED"
    MODEL_VERSION_SEALED = "MODEL_VERSION_SEALED"
    MODEL_VERSION_FILE_ADDED = "MODEL_VERSION_FILE_ADDED"
    # Other content at a path the manifest held (asked for with `replace_existing`): before and
    # after carry the path's old and new entry, digests included.
    MODEL_VERSION_FILE_REPLACED = "MODEL_VERSION_FILE_REPLACED"
    MODEL_VERSION_METRICS_LOGGED = "MODEL_VERSION_METRICS_LOGGED"
    MODEL_VERSION_REVIEW_SUBMITTED = "MODEL_VERSION_REVIEW_SUBMITTED"
    MODEL_VERSION_APPROVED = "MODEL_VERSION_APPROVED"
    MODEL_VERSION_REJECTED = "MODEL_VERSION_REJECTED"
    ALIAS_CREATED = "ALIAS_CREATED"
    ALIAS_MOVED = "ALIAS_MOVED"
    ALIAS_DELETED = "ALIAS_DELETED"
    ALIAS_PROTECTED = "ALIAS_PROTECTED"
    ALIAS_UNPROTECTED = "ALIAS_UNPROTECTED"
    ROLE_GRANTED = "ROLE_GRANTED"
    ROLE_REVOKED = "ROLE_REVOKED"
    API_TOKEN_CREATED = "API_TOKEN_CREATED"  # noqa: S105 - an action name
    API_TOKEN_REVOKED = "API_TOKEN_REVOKED"  # noqa: S105 - an action name


@dataclass(frozen=True)
class Event:
    id: str
    time: datetime
    actor: str
    request_id: str
    resource: str
    action: str
    before: Json
    after: Json
    sequence: int = 0  # 0 until the relay has placed it in the trail
    # How the actor authenticated (`token:<id>`, `jwt:<issuer>`, `mtls:<subject>`, `system`) and
    # the internal service that acted on its behalf, if any.
    authentication: str = ""
    via: str = ""


def scope_of(resource: str) -> tuple[str, str]:
    """The namespace and model id a resource name lies under (model id "" for a namespace)."""
    parts = resource.split("/")
    if len(parts) < 2 or parts[0] != "namespaces":
        return "", ""  # e.g. `tokens/{id}`: in no namespace
    return parts[1], parts[3] if len(parts) > 3 and parts[2] == "models" else ""


@dataclass(frozen=True)
class EventScope:
    """Which events a list or a watch wants (every field optional). A watch tests each event
    with `matches`; an event log searches with it (audit/mongo_log.py compiles it for MongoDB)."""

    namespace: str = ""
    model_id: str = ""
    resource: str = ""
    actions: tuple[str, ...] = ()
    actor: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    # The namespaces the caller may read (sorted), or None for all: events elsewhere, and events
    # of no namespace (API tokens), are left out.
    visible_namespaces: tuple[str, ...] | None = None
    # Inclusive, unlike `end_time`: the history of a resource up to a point in time. Not in the
    # repr, which ListEvents page tokens are bound to (it never sets it).
    until: datetime | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        *,
        namespace: NamespaceName | None = None,
        model: ModelName | None = None,
        resource: str = "",
        actions: Sequence[str] = (),
        actor: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        visible_namespaces: frozenset[str] | None = None,
    ) -> EventScope:
        if model is not None and namespace is not None and model.namespace != namespace.namespace:
            raise InvalidArgument("model", f"{model} is not in {namespace}")
        known = {a.value for a in Action}
        for i, action in enumerate(actions):
            if action not in known:
                raise InvalidArgument(
                    f"actions[{i}]", f"unknown action {quoted(action)}; one of {', '.join(sorted(known))}"
                )
        domain.check_text("resource", resource, MAX_RESOURCE_CHARS)
        domain.check_text("actor", actor, domain.MAX_TITLE_CHARS)
        if start_time is not None and end_time is not None and end_time <= start_time:
            raise InvalidArgument("end_time", "must be after start_time")
        return cls(
            namespace=model.namespace if model else namespace.namespace if namespace else "",
            model_id=model.model if model else "",
            resource=resource,
            actions=tuple(dict.fromkeys(actions)),
            actor=actor,
            start_time=start_time,
            end_time=end_time,
            visible_namespaces=None if visible_namespaces is None else tuple(sorted(visible_namespaces)),
        )

    def matches(self, event: Event) -> bool:
        namespace, model_id = scope_of(event.resource)
        return self.admits(
            namespace=namespace,
            model_id=model_id,
            resource=event.resource,
            action=event.action,
            actor=event.actor,
            time=event.time,
        )

    def admits(
        self, *, namespace: str, model_id: str, resource: str, action: str, actor: str, time: datetime
    ) -> bool:
        """`matches` for an event given by these fields (the in-process event index keeps only
        them: audit/event_index.py). The one definition of a scope; audit/mongo_log.py compiles
        the same conditions for MongoDB (`scope_condition`)."""
        return (
            (self.visible_namespaces is None or namespace in self.visible_namespaces)
            and (not self.namespace or namespace == self.namespace)
            and (not self.model_id or model_id == self.model_id)
            and (not self.resource or resource == self.resource)
            and (not self.actions or action in self.actions)
            and (not self.actor or actor == self.actor)
            and (self.start_time is None or time >= self.start_time)
            and (self.end_time is None or time < self.end_time)
            and (self.until is None or time <= self.until)
        )


def jsonable(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """A domain value as JSON: dataclasses as objects, times as RFC 3339 text, enums by value."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # resource names


def state(resource: Any) -> Json:
    """The whole history-relevant state of a resource (what a creation event carries)."""
    return {
        f.name: jsonable(getattr(resource, f.name)) for f in fields(resource) if f.name not in NOT_HISTORY
    }


def _diff_map(before: dict[str, Any], after: dict[str, Any]) -> tuple[Json, Json]:
    keys = sorted(
        k for k in set(before) | set(after) if before.get(k) != after.get(k) or (k in before) != (k in after)
    )
    return (
        {k: jsonable(before[k]) for k in keys if k in before},
        {k: jsonable(after[k]) for k in keys if k in after},
    )


def _diff_files(before: list[ModelFile], after: list[ModelFile]) -> tuple[list[Any], list[Any]]:
    old = {f.path: f for f in before}
    new = {f.path: f for f in after}
    paths = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    return [jsonable(old[p]) for p in paths if p in old], [jsonable(new[p]) for p in paths if p in new]


def changes(before: Any, after: Any) -> tuple[Json, Json]:
    """The fields that differ, before and after (see the module docstring for the shapes)."""
    if before is None:
        return {}, state(after)
    if after is None:
        return state(before), {}
    old: Json = {}
    new: Json = {}
    for f in fields(before):
        name = f.name
        was, now = getattr(before, name), getattr(after, name)
        if name in NOT_HISTORY or was == now:
            continue
        if name in MAP_FIELDS:
            old[name], new[name] = _diff_map(was, now)
        elif name == "files":
            old[name], new[name] = _diff_files(was, now)
        elif name == "reviews" and now[: len(was)] == was:
            new[name] = jsonable(now[len(was) :])
        else:
            old[name], new[name] = jsonable(was), jsonable(now)
    return old, new


def new_event(action: Action, resource: object, before: Any, after: Any, moment: datetime) -> Event:
    """The event of a change made by the current call (its actor and request id)."""
    old, new = changes(before, after)
    return _made_now(action, resource, old, new, moment)


def purge_event(resource: object, moment: datetime) -> Event:
    """The event of a purge. Not the version's whole last state, as the removal of an alias
    carries: a manifest alone may reach 2 MiB, and the trail already holds everything the purge
    removes (replaying the version's earlier events rebuilds it, GetStateAtTime just before)."""
    return _made_now(Action.MODEL_VERSION_PURGED, resource, {"purged": False}, {"purged": True}, moment)


def _made_now(action: Action, resource: object, old: Json, new: Json, moment: datetime) -> Event:
    caller = current_caller()
    return Event(
        id=str(uuid.uuid4()),
        time=moment,
        actor=caller.principal,
        request_id=current_request_id(),
        resource=str(resource),
        action=action.value,
        before=old,
        after=new,
        authentication=caller.authentication,
        via=caller.via,
    )


def made_now(action: Action, resource: object, before: Json, after: Json, moment: datetime) -> Event:
    """An event of the current call with `before`/`after` given as they are (access changes)."""
    return _made_now(action, resource, before, after, moment)
