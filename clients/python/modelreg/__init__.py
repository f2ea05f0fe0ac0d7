"""Python client for the modelreg model registry.

    from modelreg import Client

    with Client() as registry:  # the credential: MODELREG_TOKEN, `modelreg login`, ...
        pushed = registry.push("fraud/detector", "out/model", metrics={"auc": 0.97}, alias="staging")
        registry.pull("fraud/detector@staging", "/models/detector")
        for event in registry.watch_events(model="fraud/detector", actions="ALIAS_MOVED"):
            print(event.sequence, event.resource, event.after)

`AsyncClient` is the same API for asyncio. Errors are the typed exceptions of `modelreg.errors`.
"""

from modelreg_api.names import InvalidResourceName
from modelregistry.v1.access_service_pb2 import ApiToken, CallerIdentity, Role, RoleBinding, TokenRestriction
from modelregistry.v1.event_pb2 import Event
from modelregistry.v1.metadata_service_pb2 import StateAtTime
from modelregistry.v1.model_pb2 import (
    Alias,
    AliasProtection,
    Dataset,
    Lineage,
    Model,
    ModelFile,
    ModelVersion,
    ModelVersionReviewState,
    ModelVersionState,
    Namespace,
    NoRegression,
    Signature,
    TensorSpec,
)

from modelreg.aio import AsyncClient
from modelreg.client import Client
from modelreg.comparison import ComparedRow, Comparison
from modelreg.credentials import CredentialError
from modelreg.errors import (
    IntegrityError,
    ModelregError,
    PermissionDenied,
    RegistryError,
    RoleDenied,
    Unauthenticated,
)
from modelreg.events import EventFilter
from modelreg.progress import Direction, NoProgress, Outcome, TransferProgress
from modelreg.results import Page, PullResult, PushResult, TransferredFile
from modelreg.settings import ClientSettings, RetryPolicy

__all__ = [
    "Alias",
    "AliasProtection",
    "ApiToken",
    "AsyncClient",
    "CallerIdentity",
    "Client",
    "ClientSettings",
    "ComparedRow",
    "Comparison",
    "CredentialError",
    "Dataset",
    "Direction",
    "Event",
    "EventFilter",
    "IntegrityError",
    "InvalidResourceName",
    "Lineage",
    "Model",
    "ModelFile",
    "ModelVersion",
    "ModelVersionReviewState",
    "ModelVersionState",
    "ModelregError",
    "Namespace",
    "NoProgress",
    "NoRegression",
    "Outcome",
    "Page",
    "PermissionDenied",
    "PullResult",
    "PushResult",
    "RegistryError",
    "RetryPolicy",
    "Role",
    "RoleBinding",
    "RoleDenied",
    "Signature",
    "StateAtTime",
    "TensorSpec",
    "TokenRestriction",
    "TransferProgress",
    "TransferredFile",
    "Unauthenticated",
]
