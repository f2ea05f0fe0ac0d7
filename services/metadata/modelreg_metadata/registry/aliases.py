"""Aliases and their protection. An alias lives in its model's document, so every alias write is a
write of the model, and the admission rules of protected aliases (governance.py) run under the
model's lock, against the versions the alias moves between."""

from __future__ import annotations

from dataclasses import replace

from modelreg_api.errors import FailedPrecondition, InvalidArgument, NotFound
from modelreg_api.names import AliasName, ModelName, ModelVersionName
from modelreg_common import paging
from modelreg_common.access.decisions import current_access
from modelreg_common.access.roles import Role
from modelreg_common.context import current_actor

from modelreg_metadata import governance
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag, now
from modelreg_metadata.domain import Alias, AliasProtection, VersionState
from modelreg_metadata.store import ModelStore, VersionStore


class Aliases:
    def __init__(self, models: ModelStore, versions: VersionStore):
        self._models = models
        self._versions = versions

    async def set_alias(self, name: AliasName, target: ModelVersionName, etag: str) -> Alias:
        if target.model_name != name.model_name:
            raise InvalidArgument(
                "model_version",
                f"{target} belongs to another model than alias {name}; an alias points within its model",
            )
        await self._versions.get_version(target)  # NOT_FOUND before any alias changes

        async def change(current: Alias | None, protection: AliasProtection | None) -> Alias:
            if current is not None and current.version_number == target.number:
                # Already there: a no-op appends no event and keeps the etag (docs/governance.md).
                # Nothing moves, so there is nothing for the gates of a protected alias to admit.
                return current
            # Under the model's lock: the versions read here cannot change until the move is
            # written (their updates take the model's lock too, and other processes' updates are
            # fenced off by `confirm_version`: store/fences.py).
            version = await self._versions.get_version(target)
            if version.state is VersionState.ARCHIVED:
                raise FailedPrecondition(
                    f"model version {target} is ARCHIVED; unarchive it before pointing an alias at it",
                    reason="VERSION_ARCHIVED",
                )
            if protection is not None:
                # A protected alias moves only by an approver of its namespace: part of what
                # protection means, like its gates (the method's own permission is editor).
                await current_access().require(name, role=Role.APPROVER, permission="aliases.setProtected")
                serving = None
                if current is not None:
                    try:
                        serving = await self._versions.get_version(
                            current.model_version, include_deleted=True
                        )
                    except NotFound:
                        serving = None
                governance.admit(name, protection, version, serving)
            # The version stays as checked until the move is written, across processes too.
            await self._versions.confirm_version(version)
            return Alias(
                name=name,
                version_number=target.number,
                update_time=now(),
                update_actor=current_actor(),
                etag=new_etag(),
                protection=protection,
            )

        _, after = await self._models.change_alias(name, change, etag, changes.event(changes.alias_action))
        if after is None:  # `change` always returns an alias; this keeps the type honest
            raise NotFound(f"alias {name} not found")
        return after

    async def get_alias(self, name: AliasName) -> Alias:
        return await self._models.get_alias(name)

    async def list_aliases(
        self, parent: ModelName, page_size: int, page_token: str
    ) -> tuple[list[Alias], str]:
        limit = paging.page_size(page_size)
        query = f"aliases:{parent}"
        after = paging.decode_token(page_token, query)
        aliases = await self._models.list_aliases(parent)
        if after:
            aliases = [a for a in aliases if a.name.alias > str(after[0])]
        token = paging.encode_token(query, [aliases[limit - 1].name.alias]) if len(aliases) > limit else ""
        return aliases[:limit], token

    async def delete_alias(self, name: AliasName, etag: str) -> None:
        async def change(current: Alias | None, protection: AliasProtection | None) -> None:
            if current is None:
                raise NotFound(f"alias {name} not found")
            if protection is not None:
                raise FailedPrecondition(
                    f"alias {name} is protected; UnprotectAlias first to delete it",
                    reason="ALIAS_PROTECTED",
                    metadata={"alias": str(name)},
                )

        await self._models.change_alias(name, change, etag, changes.event(changes.alias_action))

    # Protected aliases

    async def protect_alias(self, protection: AliasProtection) -> AliasProtection:
        governance.check_protection(protection)
        actor = current_actor()

        def change(current: AliasProtection | None, alias: Alias | None) -> AliasProtection:
            return replace(protection, update_time=now(), update_actor=actor)

        _, after = await self._models.change_protection(
            protection.name, change, changes.event(Action.ALIAS_PROTECTED)
        )
        if after is None:  # `change` always returns a protection; this keeps the type honest
            raise NotFound(f"alias {protection.name} is not protected")
        return after

    async def get_alias_protection(self, name: AliasName) -> AliasProtection:
        protection = await self._models.get_protection(name)
        if protection is None:
            raise NotFound(f"alias {name} is not protected")
        return protection

    async def unprotect_alias(self, name: AliasName) -> None:
        def change(current: AliasProtection | None, alias: Alias | None) -> None:
            if current is None:
                raise NotFound(f"alias {name} is not protected")

        await self._models.change_protection(name, change, changes.event(Action.ALIAS_UNPROTECTED))
