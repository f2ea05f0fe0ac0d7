"""The walking skeleton's promise: register, upload 50 MiB, promote, resolve, download, verify."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import pytest
from google.protobuf import struct_pb2
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.support import ACTOR, download, unique, upload

if TYPE_CHECKING:
    from tests.support import ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration


async def test_register_upload_promote_and_fetch_by_alias(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    model = await metadata.CreateModel(
        md.CreateModelRequest(
            parent="namespaces/fraud", model_id=unique("detector"), model=model_pb2.Model(owner="fraud-team")
        ),
        metadata=ACTOR,
    )
    params = struct_pb2.Struct()
    params.update({"max_depth": 8, "learning_rate": 0.05})
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(
            parent=model.name,
            model_version=model_pb2.ModelVersion(params=params, metrics={"auc": 0.97, "f1": 0.88}),
        ),
        metadata=ACTOR,
    )

    data = os.urandom(50 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    stored = await upload(artifacts, version.name, "model/weights.bin", data)
    assert (stored.size_bytes, stored.sha256) == (len(data), digest)

    await metadata.SetAlias(
        md.SetAliasRequest(name=f"{model.name}/aliases/production", model_version=version.name),
        metadata=ACTOR,
    )
    resolved = await metadata.GetModelVersionByAlias(
        md.GetModelVersionByAliasRequest(name=f"{model.name}/aliases/production")
    )
    assert resolved.name == version.name
    assert dict(resolved.metrics) == {"auc": 0.97, "f1": 0.88}
    assert resolved.params == params
    assert [(f.path, f.size_bytes, f.sha256) for f in resolved.files] == [
        ("model/weights.bin", len(data), digest)
    ]

    header, received = await download(artifacts, f"{model.name}/aliases/production", "model/weights.bin")
    assert header.sha256 == digest
    assert hashlib.sha256(received).hexdigest() == digest
    assert received == data
