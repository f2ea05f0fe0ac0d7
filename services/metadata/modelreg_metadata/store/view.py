"""How the MongoDB stores see the documents: what they read them through, and what they tell
after each write. The stores hold the rules; a view only decides where documents come from.

`DatabaseView` is MongoDB's (several processes write, so nothing read earlier can be trusted):
every read goes to the database and its indexes, and the models' version counters are written at
once. FerretDB deployments (one writing process) use `ReplicaView` (store/replica.py), the one
layer that holds the FerretDB accommodations for reads: an in-process copy of the documents,
searches evaluated over it, and counters written later. The stores call the same methods either
way, so neither store module branches on the database it runs on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from modelreg_api.names import ModelName, ModelVersionName
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from modelreg_metadata.domain import ModelVersion
from modelreg_metadata.search import Cursor
from modelreg_metadata.store.documents import (
    MAX_UPDATES_PER_COMMAND,
    Document,
    model_key,
    version_from,
    version_key,
)
from modelreg_metadata.store.query import keyset_after

if TYPE_CHECKING:
    from modelreg_metadata.store.database import MongoDatabase


class DatabaseView:
    def __init__(self, database: MongoDatabase):
        self._db = database

    # Models

    async def model(self, name: ModelName) -> Document | None:
        """The model's document (its counter at least as high as the last number given)."""
        return await self._db.models.find_one({"_id": model_key(name)})

    def model_written(self, doc: Document) -> None:
        """A model document was inserted."""

    def model_changed(self, doc: Document, changes: Document) -> None:
        """`doc` (as read) was updated with `$set: changes` and `$inc: {revision: 1}`."""

    async def record_version_numbers(self, latest: dict[ModelName, int]) -> None:
        """Raises the models' `latest_version_number` counters to the numbers just inserted.

        The counter is only a hint for the next allocation (numbers are guarded by the versions'
        unique `_id`). `$max` is one atomic write that no other write of the model contradicts
        (none sets the field), so it needs no model lock; here it is written at once, for all
        models in one command.
        """
        await self.write_version_numbers(latest)

    async def before_model_search(self) -> None:
        """A model search is about to read the models' documents (counters included)."""

    async def write_version_numbers(self, latest: dict[ModelName, int]) -> None:
        updates = [
            UpdateOne({"_id": model_key(name)}, {"$max": {"latest_version_number": number}})
            for name, number in latest.items()
        ]
        for start in range(0, len(updates), MAX_UPDATES_PER_COMMAND):
            await self._db.models.bulk_write(updates[start : start + MAX_UPDATES_PER_COMMAND], ordered=False)

    # Versions

    async def version(self, name: ModelVersionName) -> Document | None:
        """The version's document as stored (a purged version's tombstone included)."""
        return await self._db.versions.find_one({"_id": version_key(name.model_name, name.number)})

    def version_written(self, doc: Document) -> None:
        """A version document was inserted."""

    def version_changed(self, doc: Document, changes: Document, removed: Iterable[str] = ()) -> None:
        """`doc` (as read) was updated with `$set: changes`, `$unset: removed` and
        `$inc: {revision: 1}`."""

    def version_unknown(self, doc: Document) -> None:
        """A write of `doc` failed in a way that leaves its outcome unknown."""

    def version_from(self, doc: Document, aliases: list[str]) -> ModelVersion:
        return version_from(doc, aliases)

    async def find_versions(
        self,
        scope: Document,
        condition: Document,
        sort: list[tuple[str, bool]],
        limit: int,
        after: Cursor | None,
    ) -> list[Document]:
        """Up to `limit` version documents in `scope` (its `namespace`, maybe its `model_id`, and
        conditions on `deleted`/`purged`) matching `condition`, in `sort` order after `after`."""
        return await find_page(self._db.versions, [scope, condition], sort, limit, after)


async def find_page(
    collection: AsyncCollection[Document],
    conditions: list[Document],
    sort: list[tuple[str, bool]],
    limit: int,
    after: Cursor | None,
) -> list[Document]:
    """Up to `limit` documents matching every condition, in `sort` order (then `_id`) after `after`."""
    if after is not None:
        conditions = [*conditions, keyset_after(sort, after.values, after.key)]
    conditions = [c for c in conditions if c]
    query: Document = (
        {} if not conditions else conditions[0] if len(conditions) == 1 else {"$and": conditions}
    )
    order = [(path, DESCENDING if desc else ASCENDING) for path, desc in sort] + [("_id", ASCENDING)]
    cursor = collection.find(query).sort(order).limit(limit)
    return [doc async for doc in cursor]
