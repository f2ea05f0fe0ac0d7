"""The audit trail, filtered by actor, action, model and time, a page at a time, newest first
(what changed recently; `?order=oldest` for the trail from its start); and "what did this alias
point at on a given date" (`?alias=ns/model@alias&at=<RFC3339>`, GetStateAtTime)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from modelreg.errors import InvalidArgument, NotFound
from modelreg_api.names import InvalidResourceName
from modelregistry.v1 import metadata_service_pb2 as md
from starlette.requests import Request
from starlette.responses import Response

from modelreg_web.pages.browse import query
from modelreg_web.views import Visit, render

PAGE_SIZE = 50
_EVENT_FILTERS = ("actor", "action", "model", "since", "until")
# The request field a refusal names -> the form field to show it at.
_FORM_FIELDS = {
    "actions": "action",
    "actor": "actor",
    "model": "model",
    "start_time": "since",
    "end_time": "until",
    "page_token": "model",
}


class BadField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def moment(field: str, text: str) -> datetime | None:
    """An RFC 3339 time (`2026-12-01T12:00:00Z`) or a date (`2026-12-01`, midnight UTC)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadField(field, f"{text[:40]!r} is not a time like 2026-12-01T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _href(form: dict[str, str], *, oldest_first: bool, page_token: str = "") -> str:
    """This page with the same event filters, in an order (newest first unless told), at a page."""
    params = {name: form[name] for name in _EVENT_FILTERS if form[name]}
    if oldest_first:
        params["order"] = "oldest"
    if page_token:
        params["page_token"] = page_token
    return f"/audit?{urlencode(params)}" if params else "/audit"


async def audit(request: Request) -> Response:
    visit = Visit.of(request)
    form = {
        name: query(request, name) for name in ("actor", "action", "model", "since", "until", "alias", "at")
    }
    token = query(request, "page_token")
    # Anything but `oldest` is the default: a made-up value shows the usual page, not an error.
    oldest_first = query(request, "order") == "oldest"
    problems: dict[str, str] = {}
    events: list[object] = []
    next_token = ""
    state: md.StateAtTime | None = None
    try:
        since, until = moment("since", form["since"]), moment("until", form["until"])
        at = moment("at", form["at"])
    except BadField as exc:
        problems[exc.field] = str(exc)
        since = until = at = None
    if not problems:
        try:
            page = await visit.client.list_events_page(
                actor=form["actor"],
                actions=[a.strip().upper() for a in form["action"].split(",") if a.strip()],
                model=form["model"],
                start_time=since,
                end_time=until,
                page_size=PAGE_SIZE,
                page_token=token,
                newest_first=not oldest_first,
            )
            events, next_token = list(page.items), page.next_page_token
        except (InvalidArgument, InvalidResourceName) as exc:
            named = getattr(exc, "field", "").split("[")[0].split(".")[0]  # `actions[0]` -> actions
            field = _FORM_FIELDS.get(named, "model")
            problems[field] = getattr(exc, "message", str(exc))
    if form["alias"] or form["at"]:
        if "@" not in form["alias"]:
            problems["alias"] = "Name an alias as namespace/model@alias."
        elif at is None and "at" not in problems:
            problems["at"] = "Give the time to ask about."
        elif at is not None:
            try:
                state = await visit.client.state_at(form["alias"], at)
            except NotFound:
                problems["alias"] = f"{form['alias']} did not exist at {form['at']} (or was deleted by then)."
            except (InvalidArgument, InvalidResourceName) as exc:
                problems["alias"] = getattr(exc, "message", str(exc))
    return render(
        request,
        "audit.html",
        {
            "title": "Audit trail",
            "form": form,
            "events": events,
            "oldest_first": oldest_first,
            "other_order_href": _href(form, oldest_first=not oldest_first),
            "next_href": _href(form, oldest_first=oldest_first, page_token=next_token) if next_token else "",
            "problems": problems,
            "state": state,
        },
        status=400 if problems else 200,
        session=visit.session,
    )
