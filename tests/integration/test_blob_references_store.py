"""The metadata store answering the garbage collector, against the real database.

Soft delete has no RPC yet, so this one rule is checked at the store: a soft-deleted version
still references its blobs (they stay until the version is purged).
"""

from __future__ import annotations

import uuid

import pytest
from modelreg_common.errors import InvalidArgument
from modelreg_local.stack import LocalStack
from modelreg_metadata.store.blob_references import MongoBlobReferences
from modelreg_metadata.store.mongo import MongoDatabase

pytestmark = pytest.mark.integration


async def test_soft_deleted_versions_still_reference_their_blobs(stack: LocalStack) -> None:
    assert stack.stores is not None
    database = MongoDatabase(stack.stores.mongodb_uri, f"blobrefs-{uuid.uuid4().hex[:8]}")
    try:
        kept, deleted, dropped = "a" * 64, "b" * 64, "c" * 64
        await database.versions.insert_many(
            [
                {
                    "_id": "v1",
                    "deleted": False,
                    "files": [{"path": "m.bin", "size_bytes": 1, "sha256": kept}],
                },
                {
                    "_id": "v2",
                    "deleted": True,
                    "files": [{"path": "m.bin", "size_bytes": 1, "sha256": deleted}],
                },
                {"_id": "v3", "deleted": False, "files": []},
            ]
        )
        references = MongoBlobReferences(database)
        assert await references.referenced([dropped, deleted, kept, kept]) == [deleted, kept]
        assert await references.referenced([]) == []
        with pytest.raises(InvalidArgument):
            await references.referenced(["not-a-digest"])
    finally:
        await database.client.drop_database(database.db.name)
        await database.close()
