"""The first administrator: on first start, an API token for `user:admin`, a global admin.

Without it a fresh registry with authentication on could not be used at all: every role binding
is granted by an admin. The metadata service writes the token to `MODELREG_BOOTSTRAP_TOKEN_FILE`
(mode 0600) when that file does not exist yet, and only then grants the admin role; `make run`
points it into the data directory, where the CLI finds it for the local stack.

Order, so no crash leaves a registry without a usable admin: the file is written first (to a
temporary name, then renamed), then the token and the binding are stored. A start that finds
the file but not its token (a crash in between, or a wiped database) stores them from the file.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import structlog
from modelreg_api.errors import NotFound
from modelreg_common.access.bindings import EVERY_NAMESPACE
from modelreg_common.access.roles import Role
from modelreg_common.identity import api_tokens
from modelreg_common.identity.caller import UNRESTRICTED

from modelreg_metadata.access_records import MAX_TOKEN_TTL, ApiToken, RoleBinding
from modelreg_metadata.clock import now
from modelreg_metadata.store import AccessStore

log = structlog.get_logger("modelreg.metadata.bootstrap")

BOOTSTRAP_ADMIN = "user:admin"
BOOTSTRAP_ACTOR = "system:modelreg"


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


async def bootstrap_admin(path: Path, store: AccessStore) -> None:
    if path.exists():  # noqa: ASYNC240 - once, at start-up, before serving
        credential = path.read_text().strip()  # noqa: ASYNC240
        parsed = api_tokens.parse(credential)
        if parsed is None:
            log.error(
                "the bootstrap token file does not hold an API token; delete it to get a new one",
                path=str(path),
            )
            return
        token_id, secret = parsed
        try:
            token = await store.get_token(token_id)
        except NotFound:
            await _store_admin(store, token_id, api_tokens.digest(secret))
            log.info("bootstrap admin restored from its file", path=str(path), principal=BOOTSTRAP_ADMIN)
            return
        if not token.active(now()):
            log.warning(
                "the bootstrap admin token is expired or revoked; delete its file and restart for a new one",
                path=str(path),
            )
        return
    issued = api_tokens.issue()
    _write_private(path, issued.secret + "\n")
    await _store_admin(store, issued.token_id, issued.secret_sha256)
    log.info("bootstrap admin created", path=str(path), principal=BOOTSTRAP_ADMIN)


async def _store_admin(store: AccessStore, token_id: str, secret_sha256: str) -> None:
    moment = now()
    token = ApiToken(
        token_id=token_id,
        principal=BOOTSTRAP_ADMIN,
        description="bootstrap admin (created on first start)",
        restriction=UNRESTRICTED,
        create_time=moment,
        create_actor=BOOTSTRAP_ACTOR,
        expire_time=moment + min(MAX_TOKEN_TTL, timedelta(days=366)),
    )
    await store.insert_token(token, secret_sha256)
    await store.grant(RoleBinding(EVERY_NAMESPACE, BOOTSTRAP_ADMIN, Role.ADMIN, moment, BOOTSTRAP_ACTOR))
    await store.advance_epoch()
