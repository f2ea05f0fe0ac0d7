"""Keeping alias rules true across several metadata processes (MongoDB's semantics only).

An alias lives in its model's document; the state it depends on (a version's lifecycle state,
review state, deletion) lives in the version's document. In one process the model's lock
(store/locks.py) orders an alias move and a version change of the same model. Across processes
nothing does: without more, an alias move could check a version, a second process archive it (or
withdraw its approval), and the move then land on a version that fails its rules.

No multi-document transactions are available (FerretDB v1 has none), so each side, before its
own write, makes the other side's pending write fail:

- an alias move first *confirms* its target version: a write conditioned on the version's etag as
  the move checked it, bumping its revision (`confirm_version`); then it writes the model with
  the model's revision as read;
- a version change that an alias's admission depends on (`admission_changed`) first *fences*
  the model: a write conditioned on the model's revision as the change read it (with its aliases
  and protections), bumping it (`fence_model`); then it writes the version with the version's
  revision as read.

Whichever order the four writes land in, one side's conditioned write fails: if the move's
confirmation lands first, the version change's write (conditioned on the older revision) fails;
if the fence lands first, the move's model write (conditioned on the older revision) fails; and
a move reading the version after the change was written sees the change. The failing side
re-reads and decides again (`ConcurrentWrite` is retried by the stores a few times, then
surfaces as ABORTED). tests/replicas races both sides through two processes.

On FerretDB's single-process path the locks already order them and these writes are skipped.
"""

from __future__ import annotations

from modelreg_api.errors import Aborted

from modelreg_metadata.domain import ModelVersion
from modelreg_metadata.store.database import MongoDatabase

# How often a store re-reads and retries a write that lost a compare-and-set to another process.
MAX_ATTEMPTS = 8


class ConcurrentWrite(Aborted):
    """A conditioned write found its document changed by another writer since it was read."""


def admission_changed(before: ModelVersion, after: ModelVersion) -> bool:
    """Whether the change touches what an alias move checks of its target (governance.admit)."""
    return (before.state, before.review_state, before.deleted) != (
        after.state,
        after.review_state,
        after.deleted,
    )


async def fence_model(database: MongoDatabase, key: str, revision: int) -> None:
    """Bump the model's revision if it is still `revision`, so a move read before fails."""
    if not database.atomic_updates:
        return
    result = await database.models.update_one({"_id": key, "revision": revision}, {"$inc": {"revision": 1}})
    if result.matched_count != 1:
        raise ConcurrentWrite(f"model {key} changed concurrently; retry")


async def confirm_version(database: MongoDatabase, key: str, etag: str) -> None:
    """Bump the version's revision if its etag is still `etag`, so a change read before fails."""
    if not database.atomic_updates:
        return
    result = await database.versions.update_one({"_id": key, "etag": etag}, {"$inc": {"revision": 1}})
    if result.matched_count != 1:
        raise ConcurrentWrite(f"model version {key} changed while an alias moved to it; retry")
