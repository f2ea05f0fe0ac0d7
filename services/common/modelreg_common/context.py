"""Per-call context: the request id and the acting identity, bound by the interceptor.

Domain code reads the actor from here, so an authentication interceptor can later replace the
metadata-based identity without touching any write path.
"""

from __future__ import annotations

from contextvars import ContextVar

ANONYMOUS_ACTOR = "anonymous"

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_actor: ContextVar[str] = ContextVar("actor", default=ANONYMOUS_ACTOR)


def current_request_id() -> str:
    return _request_id.get()


def current_actor() -> str:
    return _actor.get()


def bind_call(request_id: str, actor: str) -> None:
    _request_id.set(request_id)
    _actor.set(actor or ANONYMOUS_ACTOR)
