"""Downloading one file of a version, streamed through this service from the artifact service.

Nothing is stored here: chunks are relayed as they arrive, while `AsyncClient.stream_file`
checks size and SHA-256 and holds the last chunk back until they match. On a mismatch the
response is aborted before its last bytes (the browser reports a failed download, never a
complete file with wrong bytes); when the whole file fits in the held-back chunk, the mismatch is
known before anything is sent and the reader gets an error page instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

from modelreg.errors import DataLoss, IntegrityError, ModelregError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from modelreg_web.metrics import DOWNLOAD_BYTES
from modelreg_web.pages.version import version_number
from modelreg_web.views import PageError, Visit

log = logging.getLogger("modelreg_web")


def _disposition(path: str) -> str:
    name = path.rpartition("/")[2] or "download"
    fallback = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download(request: Request) -> Response:
    visit = Visit.of(request)
    ns, model_id, path = (request.path_params[k] for k in ("ns", "model", "path"))
    ref = f"{ns}/{model_id}/{version_number(request)}"
    found = await visit.client.get_version(ref)
    file = next((f for f in found.files if f.path == path), None)
    if file is None:
        raise PageError(404, "Not found", f"Version {ref} has no file {path[:100]!r}.")
    chunks = visit.client.stream_file(found, path).__aiter__()
    try:
        first = await anext(chunks, b"")
    except (IntegrityError, DataLoss) as exc:  # ours, or the artifact service's own check
        log.error("download of %s %s refused: %s", ref, path[:100], exc)
        raise PageError(502, "The file failed verification", str(exc)[:300]) from None

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
            DOWNLOAD_BYTES.inc(len(first))
        try:
            async for chunk in chunks:
                yield chunk
                DOWNLOAD_BYTES.inc(len(chunk))  # counted once the server took it for the browser
        except ModelregError as exc:
            log.error("download of %s %s aborted: %s", ref, path[:100], exc)
            raise  # uvicorn ends the connection short of Content-Length: the download fails

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(file.size_bytes),
            "Content-Disposition": _disposition(path),
            "X-Content-SHA256": file.sha256.removeprefix("sha256:"),
            "Cache-Control": "private, no-store",
        },
    )
