"""API tokens and role bindings: one document each, written with its audit event (audit/outbox.py).

Both services read these collections (modelreg_common.identity.token_directory and
modelreg_common.access.bindings, which define the fields); only this store writes them. Neither
is ever deleted: a revoked token keeps its record (who had it, until when), and a revoked binding
stays as a tombstone (`active: false`) that carries its event until the relay has moved it, as
a purged version does. Granting it again reactivates it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from modelreg_api.errors import Aborted, NotFound
from modelreg_common.access.bindings import EPOCH_KEY, binding_key
from modelreg_common.access.roles import Role
from modelreg_common.identity.token_directory import restriction_from
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from modelreg_metadata.access_records import ApiToken, RoleBinding
from modelreg_metadata.audit import events
from modelreg_metadata.audit.events import Action, Event
from modelreg_metadata.audit.outbox_entry import outbox_entry
from modelreg_metadata.clock import now
from modelreg_metadata.store.database import MongoDatabase
from modelreg_metadata.store.documents import Document

TOKENS = "api_tokens"
BINDINGS = "role_bindings"


def _token_from(doc: Document) -> ApiToken:
    return ApiToken(
        token_id=doc["_id"],
        principal=doc["principal"],
        description=doc.get("description", ""),
        restriction=restriction_from(doc),
        create_time=doc["create_time"],
        create_actor=doc.get("create_actor", ""),
        expire_time=doc["expire_time"],
        last_used_time=doc.get("last_used_time"),
        revoke_time=doc.get("revoke_time"),
    )


def _binding_from(doc: Document) -> RoleBinding:
    return RoleBinding(
        namespace=doc["namespace"],
        principal=doc["principal"],
        role=Role(doc["role"]),
        create_time=doc["create_time"],
        create_actor=doc.get("create_actor", ""),
    )


def _token_state(token: ApiToken) -> dict[str, Any]:
    """What the trail says about a token: never its secret or hash."""
    restriction = token.restriction
    return {
        "principal": token.principal,
        "description": token.description,
        "expire_time": events.jsonable(token.expire_time),
        "namespaces": sorted(restriction.namespaces),
        "max_role": restriction.max_role.label if restriction.max_role else "",
    }


class MongoAccessStore:
    def __init__(self, database: MongoDatabase):
        self._db = database
        self._tokens = database.db[TOKENS]
        self._bindings = database.db[BINDINGS]

    # Tokens

    async def insert_token(self, token: ApiToken, secret_sha256: str) -> ApiToken:
        event = events.made_now(
            Action.API_TOKEN_CREATED, token.name, {}, _token_state(token), token.create_time
        )
        entry = outbox_entry(event)
        restriction = token.restriction
        await self._tokens.insert_one(
            {
                "_id": token.token_id,
                "principal": token.principal,
                "description": token.description,
                "secret_sha256": secret_sha256,
                "namespaces": sorted(restriction.namespaces),
                "max_role": int(restriction.max_role or 0),
                "create_time": token.create_time,
                "create_actor": token.create_actor,
                "expire_time": token.expire_time,
                "last_used_time": None,
                "revoke_time": None,
                "revision": 0,
                "outbox": [entry],
            }
        )
        self._db.committed(TOKENS, token.token_id, entry)
        return token

    async def get_token(self, token_id: str) -> ApiToken:
        doc = await self._tokens.find_one({"_id": token_id})
        if doc is None:
            raise NotFound(f"token tokens/{token_id} not found")
        return _token_from(doc)

    async def list_tokens(
        self, principal: str | None, *, active_at: datetime | None, limit: int, after: str | None
    ) -> list[ApiToken]:
        query: Document = {}
        if principal is not None:
            query["principal"] = principal
        if after is not None:
            query["_id"] = {"$gt": after}
        if active_at is not None:
            query["revoke_time"] = None
            query["expire_time"] = {"$gt": active_at}
        cursor = self._tokens.find(query).sort("_id", ASCENDING).limit(limit)
        return [_token_from(doc) async for doc in cursor]

    async def revoke_token(self, token_id: str) -> ApiToken:
        async with self._db.locks.hold(f"{TOKENS}/{token_id}"):
            doc = await self._tokens.find_one({"_id": token_id})
            if doc is None:
                raise NotFound(f"token tokens/{token_id} not found")
            token = _token_from(doc)
            if token.revoke_time is not None:
                return token  # revoking twice is a no-op, not an error: the outcome is the same
            moment = now()
            event = events.made_now(
                Action.API_TOKEN_REVOKED,
                token.name,
                {"revoke_time": None},
                {"revoke_time": events.jsonable(moment)},
                moment,
            )
            await self._change(TOKENS, doc, {"revoke_time": moment}, event, token.name)
            return replace(token, revoke_time=moment)

    # Role bindings

    async def grant(self, binding: RoleBinding) -> RoleBinding:
        """The binding, created or reactivated with its event; an active one is returned as is."""
        key = binding_key(binding.namespace, binding.principal, binding.role)
        event = events.made_now(
            Action.ROLE_GRANTED,
            binding.resource,
            {},
            {"principal": binding.principal, "role": binding.role.label},
            binding.create_time,
        )
        entry = outbox_entry(event)
        fields = {
            "namespace": binding.namespace,
            "principal": binding.principal,
            "role": int(binding.role),
            "active": True,
            "create_time": binding.create_time,
            "create_actor": binding.create_actor,
        }
        async with self._db.locks.hold(f"{BINDINGS}/{key}"):
            doc = await self._bindings.find_one({"_id": key})
            if doc is None:
                try:
                    await self._bindings.insert_one({"_id": key, **fields, "revision": 0, "outbox": [entry]})
                except DuplicateKeyError:
                    doc = await self._bindings.find_one({"_id": key})
                    if doc is not None and doc.get("active"):
                        return _binding_from(doc)
                    raise Aborted(f"binding {binding.resource} changed concurrently; retry") from None
                self._db.committed(BINDINGS, key, entry)
                return binding
            if doc.get("active"):
                return _binding_from(doc)
            await self._change(BINDINGS, doc, fields, event, binding.resource)
            return binding

    async def revoke(self, namespace: str, principal: str, role: Role) -> RoleBinding:
        key = binding_key(namespace, principal, role)
        async with self._db.locks.hold(f"{BINDINGS}/{key}"):
            doc = await self._bindings.find_one({"_id": key})
            if doc is None or not doc.get("active"):
                raise NotFound(f"namespaces/{namespace} has no binding of {principal} to role {role.label}")
            binding = _binding_from(doc)
            moment = now()
            event = events.made_now(
                Action.ROLE_REVOKED,
                binding.resource,
                {"principal": principal, "role": role.label},
                {},
                moment,
            )
            await self._change(BINDINGS, doc, {"active": False}, event, binding.resource)
            return binding

    async def _change(
        self, collection: str, doc: Document, fields: Document, event: Event, shown: str
    ) -> None:
        """Set `fields` of a document read under its lock, with the change's event in its outbox:
        one single-document write, conditioned on the revision read (MongoDB)."""
        entry = outbox_entry(event)
        key = doc["_id"]
        result = await self._db.db[collection].update_one(
            self._db.cas_filter(key, doc.get("revision", 0)),
            {"$set": fields, "$inc": {"revision": 1}, "$push": {"outbox": entry}},
        )
        if result.matched_count != 1:
            raise Aborted(f"{shown} changed concurrently; retry")
        self._db.committed(collection, key, entry)

    async def advance_epoch(self) -> None:
        """After every grant or revoke: other replicas re-read bindings before refusing a call
        when this counter moved (modelreg_common/access/bindings.py)."""
        await self._bindings.update_one({"_id": EPOCH_KEY}, {"$inc": {"value": 1}}, upsert=True)

    async def list_bindings(self, namespace: str, limit: int, after: str | None) -> list[RoleBinding]:
        query: Document = {"namespace": namespace, "active": True}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._bindings.find(query).sort("_id", ASCENDING).limit(limit)
        return [_binding_from(doc) async for doc in cursor]

    async def bindings_of(self, subjects: list[str]) -> list[RoleBinding]:
        cursor = self._bindings.find({"principal": {"$in": subjects}, "active": True}).sort("_id", ASCENDING)
        return [_binding_from(doc) async for doc in cursor]
