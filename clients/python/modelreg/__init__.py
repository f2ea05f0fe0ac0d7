"""Python client for the modelreg model registry.

    from modelreg import Client

    with Client(actor="alice@example.com") as registry:
        pushed = registry.push("fraud/detector", "out/model", metrics={"auc": 0.97}, alias="staging")
        registry.pull("fraud/detector@staging", "/models/detector")

`AsyncClient` is the same API for asyncio. Errors are the typed exceptions of `modelreg.errors`.
"""

from modelregistry.v1.model_pb2 import (
    Alias,
    Dataset,
    Lineage,
    Model,
    ModelFile,
    ModelVersion,
    ModelVersionState,
    Signature,
    TensorSpec,
)

from modelreg.aio import AsyncClient
from modelreg.client import Client
from modelreg.errors import IntegrityError, ModelregError, RegistryError
from modelreg.names import InvalidResourceName
from modelreg.progress import Direction, NoProgress, Outcome, TransferProgress
from modelreg.results import PullResult, PushResult, TransferredFile
from modelreg.settings import ClientSettings, RetryPolicy

__all__ = [
    "Alias",
    "AsyncClient",
    "Client",
    "ClientSettings",
    "Dataset",
    "Direction",
    "IntegrityError",
    "InvalidResourceName",
    "Lineage",
    "Model",
    "ModelFile",
    "ModelVersion",
    "ModelVersionState",
    "ModelregError",
    "NoProgress",
    "Outcome",
    "PullResult",
    "PushResult",
    "RegistryError",
    "RetryPolicy",
    "Signature",
    "TensorSpec",
    "TransferProgress",
    "TransferredFile",
]
