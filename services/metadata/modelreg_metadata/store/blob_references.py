"""Which blobs the manifests reference: what the artifact service's garbage collector asks.

Kept apart from the version store on purpose: it is a read-only question about every manifest,
soft-deleted versions included (a soft-deleted version keeps its blobs until it is purged, so
it still counts as a reference). Answers come in batches of digests so the collector never has
to list every manifest of the registry at once.
"""

from __future__ import annotations

import re

from modelreg_api.errors import InvalidArgument
from pymongo.asynchronous.collection import AsyncCollection

from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import Document

MAX_DIGESTS_PER_CALL = 1000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_digests(digests: list[str], field: str = "sha256s") -> list[str]:
    if len(digests) > MAX_DIGESTS_PER_CALL:
        raise InvalidArgument(field, f"has {len(digests)} digests; at most {MAX_DIGESTS_PER_CALL} per call")
    for digest in digests:
        if not _SHA256_HEX.fullmatch(digest):
            raise InvalidArgument(field, f"{digest[:80]!r} is not 64 lowercase hex characters")
    return digests


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
