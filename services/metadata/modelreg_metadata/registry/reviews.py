"""The review of a model version: submit, approve, reject. The rules (who may approve, in which
state) are in governance.py; these apply them inside the version's write."""

from __future__ import annotations

from dataclasses import replace

from modelreg_api.errors import NotFound
from modelreg_api.names import ModelVersionName, NamespaceName
from modelreg_common.context import current_actor

from modelreg_metadata import governance
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import now
from modelreg_metadata.domain import ModelVersion, Namespace, Review, ReviewDecision, ReviewState
from modelreg_metadata.registry.versions import change_version
from modelreg_metadata.store import NamespaceStore, VersionStore


class Reviews:
    def __init__(self, namespaces: NamespaceStore, versions: VersionStore):
        self._namespaces = namespaces
        self._versions = versions

    async def submit_for_review(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_submittable(current)
            step = Review(ReviewDecision.SUBMITTED, actor, now(), comment)
            return replace(current, review_state=ReviewState.PENDING, reviews=[*current.reviews, step])

        return await change_version(self._versions, Action.MODEL_VERSION_REVIEW_SUBMITTED, name, mutate, etag)

    async def approve_version(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()
        try:
            namespace = await self._namespaces.get_namespace(NamespaceName(name.namespace))
        except NotFound:  # created before namespaces were stored: the defaults apply
            namespace = Namespace(name=NamespaceName(name.namespace), uid="")

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_approvable(current, namespace, actor)
            step = Review(ReviewDecision.APPROVED, actor, now(), comment)
            return replace(current, review_state=ReviewState.APPROVED, reviews=[*current.reviews, step])

        return await change_version(self._versions, Action.MODEL_VERSION_APPROVED, name, mutate, etag)

    async def reject_version(self, name: ModelVersionName, comment: str, etag: str) -> ModelVersion:
        governance.check_comment(comment)
        actor = current_actor()

        def mutate(current: ModelVersion) -> ModelVersion:
            governance.check_decidable(current)
            step = Review(ReviewDecision.REJECTED, actor, now(), comment)
            return replace(current, review_state=ReviewState.REJECTED, reviews=[*current.reviews, step])

        return await change_version(self._versions, Action.MODEL_VERSION_REJECTED, name, mutate, etag)
