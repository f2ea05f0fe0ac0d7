"""Which blobs the manifests reference: what the artifact service's garbage collector asks.

Kept apart from the version store on purpose: it is a read-only question about every manifest,
soft-deleted versions included (a soft-deleted version keeps its blobs until it is purged, so
it still counts as a reference). Answers come in batches of digests so the collector never has
to list every manifest of the registry at once.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection

from modelreg_metadata.domain import check_digests
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import Document


class MongoBlobReferences:
    def __init__(self, database: MongoDatabase):
        self._versions: AsyncCollection[Document] = database.versions

    async def referenced(self, digests: list[str]) -> list[str]:
        """The digests of `digests` that at least one version's manifest lists, in the given order."""
        wanted = set(check_digests(digests))
        if not wanted:
            return []
        found: set[str] = set()
        # No `deleted` filter: soft-deleted versions keep their blobs until they are purged.
        cursor = self._versions.find({"files.sha256": {"$in": sorted(wanted)}}, {"files.sha256": True})
        async for doc in cursor:
            found.update(f["sha256"] for f in doc.get("files", []) if f.get("sha256") in wanted)
        return [d for d in dict.fromkeys(digests) if d in found]
