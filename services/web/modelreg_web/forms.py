"""Reading a submitted form: urlencoded only, bounded, first value of each field."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from modelreg_web.views import PageError

MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Unsupported form", "Forms are sent as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "Form too large", f"A form may hold at most {MAX_FORM_BYTES // 1024} KiB.")
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        form.setdefault(key, value)
    return form
