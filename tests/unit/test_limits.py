"""The 16 MiB MongoDB document limit cannot be reached: the largest version the limits allow fits."""

from __future__ import annotations

import bson
import pytest
from modelreg_api.errors import FailedPrecondition
from modelreg_api.names import ModelName
from modelreg_metadata import domain
from modelreg_metadata.domain import Dataset, Lineage, ModelFile, ModelVersion, Signature, TensorSpec
from modelreg_metadata.store.documents import version_document

SIXTEEN_MIB = 16 * 1024 * 1024


def test_the_budget_leaves_room_below_16_mib() -> None:
    # The rest is headroom for the governance outbox of pending events.
    assert domain.WORST_CASE_VERSION_BYTES < 12 * 1024 * 1024


def test_a_version_at_every_limit_fits_in_one_document() -> None:
    long_key = "é" * (domain.MAX_KEY_CHARS // 2 - 2)  # 2 bytes a character in UTF-8
    metrics = {f"{i:04d}{long_key}": float(i) for i in range(domain.MAX_METRICS)}
    tags = {f"{i:03d}{'t' * 200}": "v" * 300 for i in range(domain.MAX_MAP_BYTES // 600)}
    params = {f"group{i}": {"lr": 0.1 * i, "name": "x" * 40, "layers": [64, 32, 16]} for i in range(340)}
    files: list[ModelFile] = []
    size = 0
    while len(files) < domain.MAX_FILES_PER_VERSION:
        file = ModelFile(path=f"shards/{len(files):06d}/" + "p" * 180, size_bytes=1, sha256="a" * 64)
        size += domain.manifest_bytes([file])
        if size > domain.MAX_MANIFEST_BYTES:
            break
        files.append(file)
    lineage = Lineage(
        training_run_id="r" * domain.MAX_LINEAGE_TEXT_CHARS,
        datasets=[
            Dataset("s3://" + "u" * 2000, "sha256:" + "d" * 64, "train") for _ in range(domain.MAX_DATASETS)
        ],
    )
    tensor = TensorSpec("n" * domain.MAX_KEY_CHARS, "float32", [-1] * domain.MAX_TENSOR_RANK)
    signature = Signature([tensor] * (domain.MAX_TENSORS // 2), [tensor] * (domain.MAX_TENSORS // 2))

    domain.check_metrics(metrics)
    domain.check_string_map("tags", tags)
    domain.check_params(params)
    domain.check_lineage(lineage)
    domain.check_signature(signature)
    domain.check_manifest_room(files, ModelName("ns", "m").version(1))

    version = ModelVersion(
        name=ModelName("ns", "m").version(1),
        uid="u",
        model_uid="m",
        description="d" * domain.MAX_DESCRIPTION_CHARS,
        tags=tags,
        params=params,
        metrics=metrics,
        lineage=lineage,
        signature=signature,
        files=files,
    )
    encoded = len(bson.encode(version_document(version, "auto u")))
    assert encoded < SIXTEEN_MIB // 2, encoded


def test_a_full_manifest_is_refused_whole() -> None:
    name = ModelName("ns", "m").version(1)
    many = [
        ModelFile(path=f"f{i}", size_bytes=1, sha256="a" * 64)
        for i in range(domain.MAX_FILES_PER_VERSION + 1)
    ]
    with pytest.raises(FailedPrecondition) as caught:
        domain.check_manifest_room(many, name)
    assert caught.value.reason == "MANIFEST_FULL"
    long_paths = [
        ModelFile(path=f"{i:05d}/" + "p" * 1000, size_bytes=1, sha256="a" * 64) for i in range(2000)
    ]
    with pytest.raises(FailedPrecondition):
        domain.check_manifest_room(long_paths, name)
    domain.check_manifest_room(many[: domain.MAX_FILES_PER_VERSION], name)
