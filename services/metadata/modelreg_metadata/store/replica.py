"""An in-process, write-through copy of model and version documents, for FerretDB deployments.

Why: FerretDB v1 filters every query other than a lone `_id` equality in Go after reading and
decoding the whole collection (about 0.1-0.5 ms per document), so a search over 10,000 versions
takes seconds whatever the indexes. Its updates are not atomic either, so a FerretDB deployment
already runs exactly one metadata process (store/locks.py). That one process sees every write,
and can therefore keep an exact copy of what it reads:

- model and version documents are cached on first read, by `_id` (a version updated again
  and again, like one receiving thousands of files, is then not read back before each write:
  FerretDB decodes the whole document, manifest included, for every read);
- a namespace's version documents are loaded by one query the first time it is searched (until
  then, the versions cached by `_id` are only a part of it, used for reads by `_id`);
- every committed write replaces the cached document (the higher `revision` wins, so a load that
  races a write cannot resurrect an older copy);
- searches run the same compiled MongoDB query over the copy (store/matcher.py).

On MongoDB (several processes, real indexes) there is no replica: queries go to the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from modelreg_metadata.store.matcher import predicate, sort_documents

Document = dict[str, Any]
T = TypeVar("T")


def _newer(candidate: Document, current: Document | None) -> bool:
    return current is None or candidate.get("revision", 0) >= current.get("revision", 0)


class Replica:
    def __init__(self) -> None:
        self._models: dict[str, Document] = {}
        # namespace -> model id -> version _id -> doc: a search of one model reads only its versions
        self._versions: dict[str, dict[str, dict[str, Document]]] = {}
        self._loaded: set[str] = set()
        # Domain objects built from documents, kept while the document is current: a search
        # returns the same versions over and over, and building them costs more than finding them.
        self._built: dict[str, tuple[Document, Any]] = {}
        self._by_number: dict[tuple[str, str], list[Document]] = {}

    # Models

    def model(self, key: str) -> Document | None:
        return self._models.get(key)

    def put_model(self, doc: Document) -> None:
        doc = _without_outbox(doc)
        current = self._models.get(doc["_id"])
        if _newer(doc, current):
            if current is not None and current.get("latest_version_number", 0) > doc.get(
                "latest_version_number", 0
            ):
                # The counter only grows, and is raised without the model's lock: an update that
                # read the model before a create raised it must not take the new value back.
                doc = {**doc, "latest_version_number": current["latest_version_number"]}
            self._models[doc["_id"]] = doc

    def raise_version_number(self, key: str, number: int) -> None:
        current = self._models.get(key)
        if current is not None and current.get("latest_version_number", 0) < number:
            self._models[key] = {**current, "latest_version_number": number}

    def built(self, doc: Document, build: Callable[[Document], T]) -> T:
        entry = self._built.get(doc["_id"])
        if entry is not None and entry[0] is doc:
            value: T = entry[1]
            return value
        value = build(doc)
        self._built[doc["_id"]] = (doc, value)
        return value

    # Versions

    def has_namespace(self, namespace: str) -> bool:
        return namespace in self._loaded

    def begin_load(self, namespace: str) -> None:
        """Writes from now on are kept even before the load finishes."""
        self._versions.setdefault(namespace, {})

    def finish_load(self, namespace: str, docs: list[Document]) -> None:
        for doc in docs:
            self.put_version(doc)
        self._loaded.add(namespace)

    def version(self, namespace: str, model_id: str, key: str) -> Document | None:
        return self._versions.get(namespace, {}).get(model_id, {}).get(key)

    def put_version(self, doc: Document) -> None:
        models = self._versions.setdefault(doc["namespace"], {})
        doc = _without_outbox(doc)
        versions = models.setdefault(doc["model_id"], {})
        current = versions.get(doc["_id"])
        if _newer(doc, current):
            versions[doc["_id"]] = doc
            self._by_number.pop((doc["namespace"], doc["model_id"]), None)

    def forget_version(self, doc: Document) -> None:
        """Drop a version whose stored state is unknown (a write that failed midway); a loaded
        namespace keeps it, since its searches need every version (as before any failure)."""
        if doc["namespace"] not in self._loaded:
            self._versions.get(doc["namespace"], {}).get(doc["model_id"], {}).pop(doc["_id"], None)

    def _numbered(self, namespace: str, model_id: str) -> list[Document]:
        """A model's versions in number order (kept until one of them changes)."""
        key = (namespace, model_id)
        ordered = self._by_number.get(key)
        if ordered is None:
            ordered = sorted(self._versions[namespace].get(model_id, {}).values(), key=_number)
            self._by_number[key] = ordered
        return ordered

    def find_versions(
        self, namespace: str, model_id: str | None, query: Document, sort: list[tuple[str, int]], limit: int
    ) -> list[Document]:
        models = self._versions[namespace]
        matches = predicate(query)
        if model_id is None:
            docs = [doc for versions in models.values() for doc in versions.values()]
        else:
            docs = list(models.get(model_id, {}).values())
            if sort == [("number", 1), ("_id", 1)]:
                # The default order: walk the versions by number and stop at the page's end.
                docs = self._numbered(namespace, model_id)
                page: list[Document] = []
                for doc in docs:
                    if matches(doc):
                        page.append(doc)
                        if len(page) == limit:
                            break
                return page
        return sort_documents([doc for doc in docs if matches(doc)], sort)[:limit]


def _without_outbox(doc: Document) -> Document:
    # Outbox entries are in flight to the event trail (store/outbox.py), not part of the resource.
    return {k: v for k, v in doc.items() if k != "outbox"} if "outbox" in doc else doc


def _number(doc: Document) -> int:
    number: int = doc["number"]
    return number


def merged(doc: Document, changes: Document, removed: Iterable[str] = ()) -> Document:
    """The document after `$set: changes`, `$unset: removed` and `$inc: {revision: 1}` (outbox
    entries aside)."""
    gone = set(removed)
    result = {k: v for k, v in {**doc, **changes}.items() if k not in gone}
    return _without_outbox({**result, "revision": doc.get("revision", 0) + 1})
