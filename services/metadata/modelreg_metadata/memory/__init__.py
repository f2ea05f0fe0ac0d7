"""The registry's stores in memory: the store protocols (store/__init__.py) with the rules of the
MongoDB stores, for tests of the use cases that run in milliseconds.

Not a second production backend: nothing survives the process, and there is one process. The
contract suite (tests/contract) holds this implementation and the MongoDB one to the same rules,
so a use-case test on memory tests what the service does on a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelreg_metadata.memory.events import MemoryEventLog
from modelreg_metadata.memory.stores import (
    MemoryBlobReferences,
    MemoryModelStore,
    MemoryNamespaceStore,
    MemoryRequestStore,
    MemoryState,
    MemoryVersionStore,
)

__all__ = [
    "MemoryBlobReferences",
    "MemoryEventLog",
    "MemoryModelStore",
    "MemoryNamespaceStore",
    "MemoryRequestStore",
    "MemoryStores",
    "MemoryVersionStore",
]


@dataclass
class MemoryStores:
    """One registry's stores, sharing their records and event trail."""

    state: MemoryState = field(default_factory=MemoryState)

    def __post_init__(self) -> None:
        self.namespaces = MemoryNamespaceStore(self.state)
        self.models = MemoryModelStore(self.state)
        self.versions = MemoryVersionStore(self.state)
        self.blob_references = MemoryBlobReferences(self.state)
        self.requests = MemoryRequestStore(self.state)

    @property
    def events(self) -> MemoryEventLog:
        return self.state.events
