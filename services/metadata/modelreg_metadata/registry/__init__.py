"""The registry's use cases: every read and write of namespaces, models, versions, aliases and
metrics goes through here.

This is the one place that stamps identity, time and etags on a change, and each change is a
single-document write in the store that hands back the resource before and after it. Every write
also takes the audit event of its change (audit/changes.py): the store builds it from the
resource before and after, inside the write, and commits both together (audit/outbox.py).
Governance rules (reviews, protected aliases) are in governance.py; the registry applies them
inside the writes.

`Registry` is the one entry point, built from the stores once; it holds one small class of use
cases per aggregate (`registry.versions.seal_version(...)`), each in its own module and given
only the stores it needs. Why this shape: a new operation is written in one place, next to the
operations it resembles, with no forwarding method to keep in step, and what an operation can
touch is visible in its class's constructor. The operations that span aggregates say so there
(a model creates its namespace, a review reads the namespace's settings, an alias move reads the
versions it points between).
"""

from __future__ import annotations

from modelreg_metadata.registry.aliases import Aliases
from modelreg_metadata.registry.metrics import Metrics
from modelreg_metadata.registry.models import Models
from modelreg_metadata.registry.namespaces import Namespaces
from modelreg_metadata.registry.reviews import Reviews
from modelreg_metadata.registry.versions import Versions
from modelreg_metadata.store import ModelStore, NamespaceStore, RequestStore, VersionStore


class Registry:
    def __init__(
        self,
        namespaces: NamespaceStore,
        models: ModelStore,
        versions: VersionStore,
        requests: RequestStore,
    ):
        self.namespaces = Namespaces(namespaces, requests)
        self.models = Models(namespaces, models, requests)
        self.versions = Versions(models, versions, requests)
        self.aliases = Aliases(models, versions)
        self.reviews = Reviews(namespaces, versions)
        self.metrics = Metrics(models, versions, requests)
