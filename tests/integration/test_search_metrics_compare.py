"""Search (filter language, order_by, keyset pages), metric history and comparison, through gRPC."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from modelreg_local.stack import METADATA_SERVICE, LocalStack, ServiceProcess
from modelreg_local.stores import free_port
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import metadata_service_pb2_grpc, model_pb2
from pymongo import MongoClient

from tests.support import ACTOR, authenticated_channel, error_info, unique

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


# The fixture model: six versions; 4 is sealed, 5 archived, 6 deleted.
VERSIONS: list[dict[str, Any]] = [
    {
        "tags": {"team": "a", "stage": "dev"},
        "metrics": {"accuracy": 0.80, "val loss": 0.5},
        "params": {
            "optimizer": {"name": "adam", "lr": 0.01},
            "learning.rate": 0.1,
            "layers": [64, 32],
            "use_bias": True,
        },
    },
    {
        "tags": {"team": "b"},
        "metrics": {"accuracy": 0.91, "val loss": 0.3},
        "params": {"optimizer": {"name": "sgd", "lr": 0.1}, "layers": [128]},
    },
    {
        "tags": {"team": "a", "data.set": "v2"},
        "metrics": {"accuracy": 0.95},
        "params": {"optimizer": {"name": "adam", "lr": 0.001}, "use_bias": False},
    },
    {
        "tags": {"team": "c"},
        "metrics": {"précision": 0.7},
        "params": {"optimizer": {"name": "adam-w", "lr": 0.005}},
    },
    {"tags": {}, "metrics": {"accuracy": 0.91}, "params": {"batch": "large"}},
    {"tags": {"team": "b"}, "metrics": {}, "params": {}},
]


@pytest.fixture(scope="module")
async def database_metadata(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MetadataStub]:
    """A second metadata process without the in-process replica: FerretDB evaluates the queries.

    Every search test runs through both, so the replica's matcher and the database agree on the
    compiled queries' semantics. (Reads only: the stack's own process stays the one writer.)
    """
    assert stack.metadata is not None
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess(
        "metadata-no-replica",
        module="modelreg_metadata",
        service=METADATA_SERVICE,
        address=address,
        env={**stack.metadata.env, "MODELREG_METADATA_ADDR": address, "MODELREG_METADATA_REPLICA": "false"},
        log_dir=Path(tmp_path_factory.mktemp("no-replica")),
    )
    process.start()
    try:
        process.wait_healthy()
        async with authenticated_channel(address) as channel:
            yield metadata_service_pb2_grpc.MetadataServiceStub(channel)
    finally:
        process.stop()


@pytest.fixture(params=["replica", "database"])
def reader(request: pytest.FixtureRequest, metadata: MetadataStub) -> MetadataStub:
    if request.param == "replica":
        return metadata
    stub: MetadataStub = request.getfixturevalue("database_metadata")
    return stub


@pytest.fixture(scope="module")
async def searchable(metadata: MetadataStub) -> tuple[str, str]:
    """A namespace with the fixture model, and another model holding one very accurate version."""
    namespace = unique("search")
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id="fixture"), metadata=ACTOR
    )
    for fields in VERSIONS:
        await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model.name,
                model_version=model_pb2.ModelVersion(
                    tags=fields["tags"], metrics=fields["metrics"], params=struct(fields["params"])
                ),
            ),
            metadata=ACTOR,
        )
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=f"{model.name}/versions/4"))
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=f"{model.name}/versions/5"))
    await metadata.ArchiveModelVersion(md.ArchiveModelVersionRequest(name=f"{model.name}/versions/5"))
    await metadata.DeleteModelVersion(md.DeleteModelVersionRequest(name=f"{model.name}/versions/6"))
    other = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id="other")
    )
    await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(
            parent=other.name, model_version=model_pb2.ModelVersion(metrics={"accuracy": 0.99})
        )
    )
    return namespace, model.name


async def search(
    metadata: MetadataStub, parent: str, filter_: str = "", order_by: str = "", page_size: int = 0, **kw: Any
) -> list[str]:
    """Every page of a search, as `model/number`."""
    found: list[str] = []
    token = ""
    while True:
        page = await metadata.ListModelVersions(
            md.ListModelVersionsRequest(
                parent=parent, filter=filter_, order_by=order_by, page_size=page_size, page_token=token, **kw
            )
        )
        found += [v.name for v in page.model_versions]
        token = page.next_page_token
        if not token:
            return [n.split("/models/")[1].replace("/versions/", "/") for n in found]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("metrics.accuracy > 0.9", [2, 3, 5]),
        ('metrics.accuracy >= 0.91 AND tags.team = "b"', [2]),
        ('tags.team = "a" OR tags.team = "c"', [1, 3, 4]),
        ('tags.team IN ("a", "b")', [1, 2, 3]),
        ('tags.team != "a"', [2, 4]),
        ('NOT tags.team = "a"', [2, 4, 5]),
        ("params.optimizer.lr <= 0.01", [1, 3, 4]),
        ('params.optimizer.name STARTS_WITH "adam"', [1, 3, 4]),
        ('params.optimizer.name = "adam"', [1, 3]),
        ("params.`learning.rate` = 0.1", [1]),
        ("params.layers = 64", [1]),
        ("params.use_bias = false", [3]),
        ("params.optimizer.lr > 0.01 OR params.batch = 'large'", [2, 5]),
        ("metrics.`val loss` < 0.4", [2]),
        ("metrics.précision > 0.5", [4]),
        ('tags.`data.set` = "v2"', [3]),
        ('state = "READY"', [4]),
        ('state IN ("archived", "READY")', [4, 5]),
        ('(metrics.accuracy > 0.85 OR tags.stage = "dev") AND NOT params.optimizer.name = "sgd"', [1, 3, 5]),
        ("number > 2 AND number <= 4", [3, 4]),
        ('create_actor = "user:alice@example.com"', [1, 2, 3, 4, 5]),
        ('create_time > "2000-01-01T00:00:00Z" AND metrics.accuracy < 0.9', [1]),
        ("metrics.nothing > 0", []),
    ],
)
async def test_filter_semantics(
    reader: MetadataStub, searchable: tuple[str, str], filter_: str, expected: list[int]
) -> None:
    _, model = searchable
    assert await search(reader, model, filter_) == [f"fixture/{n}" for n in expected]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("number desc", [5, 4, 3, 2, 1]),
        ("metrics.accuracy desc", [3, 2, 5, 1, 4]),  # 2 and 5 tie; a missing value sorts last descending
        ("metrics.accuracy", [4, 1, 2, 5, 3]),  # ... and first ascending
        ("params.optimizer.name, number desc", [5, 3, 1, 4, 2]),
        ("tags.team desc, metrics.accuracy desc", [4, 2, 3, 1, 5]),
    ],
)
@pytest.mark.parametrize("page_size", [1, 2, 100])
async def test_order_by_with_keyset_pages(
    reader: MetadataStub, searchable: tuple[str, str], order_by: str, expected: list[int], page_size: int
) -> None:
    _, model = searchable
    assert await search(reader, model, order_by=order_by, page_size=page_size) == [
        f"fixture/{n}" for n in expected
    ]


async def test_search_across_a_namespace_and_deleted_versions(
    reader: MetadataStub, searchable: tuple[str, str]
) -> None:
    metadata = reader
    namespace, model = searchable
    everywhere = f"namespaces/{namespace}/models/-"
    assert await search(metadata, everywhere, "metrics.accuracy > 0.9") == [
        "fixture/2",
        "fixture/3",
        "fixture/5",
        "other/1",
    ]
    assert await search(
        metadata, everywhere, "metrics.accuracy > 0.9", "metrics.accuracy desc", page_size=1
    ) == [
        "other/1",
        "fixture/3",
        "fixture/2",
        "fixture/5",
    ]
    assert await search(metadata, everywhere, 'model_id = "other"') == ["other/1"]
    assert await search(metadata, model, 'tags.team = "b"', show_deleted=True) == ["fixture/2", "fixture/6"]


async def test_search_models(metadata: MetadataStub) -> None:
    namespace = unique("ns")
    for model_id, owner, task in [("b", "x", "nlp"), ("a", "y", "vision"), ("c", "x", "tabular")]:
        await metadata.CreateModel(
            md.CreateModelRequest(
                parent=f"namespaces/{namespace}",
                model_id=model_id,
                model=model_pb2.Model(owner=owner, labels={"task": task}),
            )
        )

    async def ids(filter_: str, order_by: str = "") -> list[str]:
        page = await metadata.ListModels(
            md.ListModelsRequest(parent=f"namespaces/{namespace}", filter=filter_, order_by=order_by)
        )
        return [m.name.rsplit("/", 1)[1] for m in page.models]

    assert await ids('owner = "x"') == ["b", "c"]
    assert await ids('labels.task IN ("nlp", "vision")', "model_id desc") == ["b", "a"]
    assert await ids('model_id STARTS_WITH "a" OR labels.task = "tabular"') == ["a", "c"]
    assert await ids("", "owner desc, model_id") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (md.ListModelVersionsRequest(filter="metrics.accuracy >"), "filter", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(filter="colour = 'red'"), "filter", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(filter="metrics.accuracy = 'high'"), "filter", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(filter="tags.`$where` = 1"), "filter", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(filter="x" * 5000), "filter", "INVALID_ARGUMENT"),
        (md.ListModelVersionsRequest(order_by="metrics.accuracy upward"), "order_by", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(order_by="shoe_size"), "order_by", "INVALID_FILTER"),
        (md.ListModelVersionsRequest(page_size=-1), "page_size", "INVALID_ARGUMENT"),
        (md.ListModelVersionsRequest(page_token="bm90IGEgdG9rZW4"), "page_token", "INVALID_ARGUMENT"),
    ],
)
async def test_bad_searches_name_the_field(
    metadata: MetadataStub,
    searchable: tuple[str, str],
    request_: md.ListModelVersionsRequest,
    field: str,
    reason: str,
) -> None:
    _, model = searchable
    request_.parent = model
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModelVersions(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value) == (reason, [field])


async def test_a_page_token_only_continues_its_own_search(
    metadata: MetadataStub, searchable: tuple[str, str]
) -> None:
    _, model = searchable
    page = await metadata.ListModelVersions(
        md.ListModelVersionsRequest(parent=model, filter="metrics.accuracy > 0", page_size=1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModelVersions(
            md.ListModelVersionsRequest(
                parent=model, filter="metrics.accuracy > 0.5", page_token=page.next_page_token
            )
        )
    assert error_info(caught.value)[1] == ["page_token"]


# Metric history


def point(key: str, value: float, step: int = 0, **kw: Any) -> model_pb2.MetricPoint:
    return model_pb2.MetricPoint(key=key, value=value, step=step, **kw)


async def new_version(metadata: MetadataStub) -> model_pb2.ModelVersion:
    model = await metadata.CreateModel(md.CreateModelRequest(parent="namespaces/metrics", model_id=unique()))
    return await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))


async def history(
    metadata: MetadataStub, version: str, key: str, page_size: int = 0
) -> list[model_pb2.MetricPoint]:
    points: list[model_pb2.MetricPoint] = []
    token = ""
    while True:
        page = await metadata.ListMetricHistory(
            md.ListMetricHistoryRequest(
                model_version=version, metric_key=key, page_size=page_size, page_token=token
            )
        )
        points += page.points
        token = page.next_page_token
        if not token:
            return points


async def test_metric_history_lives_outside_the_version_and_pages(metadata: MetadataStub) -> None:
    version = await new_version(metadata)
    key = "val loss.top-1 ✓"
    for start in range(0, 2500, 1000):
        await metadata.LogMetrics(
            md.LogMetricsRequest(
                model_version=version.name,
                points=[point(key, 1.0 / (step + 1), step) for step in range(start, min(start + 1000, 2500))],
            ),
            metadata=ACTOR,
        )
    logged = await metadata.LogMetrics(
        md.LogMetricsRequest(
            model_version=version.name, points=[point("accuracy", 0.9, 3, dataset="eval", slice="fr")]
        )
    )
    assert dict(logged.metrics) == {key: 1.0 / 2500, "accuracy": 0.9}

    points = await history(metadata, version.name, key, page_size=700)
    assert [p.step for p in points] == list(range(2500))
    assert all(p.time.seconds > 0 for p in points)
    [acc] = await history(metadata, version.name, "accuracy")
    assert (acc.value, acc.step, acc.dataset, acc.slice) == (0.9, 3, "eval", "fr")
    assert await history(metadata, version.name, "never-logged") == []
    # The history did not grow the version: its summary has one value per key.
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert len(fetched.metrics) == 2


async def test_history_documents_of_the_old_layout_are_read_and_appended_to(
    metadata: MetadataStub, stack: LocalStack
) -> None:
    """Series documents written before the packed columns (`points: [{v, s, t, d, sl}]`, see
    store/series.py) still read, and LogMetrics appends to them in that layout; new documents
    are packed."""
    version = await new_version(metadata)
    at = timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=123_000_000)
    first = [point("loss", 0.5, 0, time=at), point("loss", 0.25, 1, time=at, dataset="eval", slice="fr")]
    await metadata.LogMetrics(md.LogMetricsRequest(model_version=version.name, points=first))
    _, namespace, _, model_id, _, number = version.name.split("/")
    document_id = f"{namespace}/{model_id}/{number}|0|loss"
    when = datetime.fromtimestamp(1_800_000_000.123, UTC)
    assert stack.stores is not None
    with MongoClient[dict[str, Any]](stack.stores.mongodb_uri) as client:
        series = client["modelreg"]["metric_series"]
        packed = series.find_one({"_id": document_id})
        assert packed is not None
        assert packed["n"] == 2
        assert "points" not in packed
        series.replace_one(
            {"_id": document_id},
            {
                "points": [
                    {"v": 0.5, "s": 0, "t": when, "d": "", "sl": ""},
                    {"v": 0.25, "s": 1, "t": when, "d": "eval", "sl": "fr"},
                ]
            },
        )
        assert [
            (p.value, p.step, p.time, p.dataset, p.slice)
            for p in await history(metadata, version.name, "loss")
        ] == [
            (0.5, 0, at, "", ""),
            (0.25, 1, at, "eval", "fr"),
        ]
        await metadata.LogMetrics(
            md.LogMetricsRequest(model_version=version.name, points=[point("loss", 0.125, 2, time=at)])
        )
        assert [(p.value, p.step) for p in await history(metadata, version.name, "loss")] == [
            (0.5, 0),
            (0.25, 1),
            (0.125, 2),
        ]
        grown = series.find_one({"_id": document_id})
        assert grown is not None
        assert [row["v"] for row in grown["points"]] == [0.5, 0.25, 0.125]


async def test_summary_keeps_the_highest_step(metadata: MetadataStub) -> None:
    version = await new_version(metadata)
    at = timestamp_pb2.Timestamp(seconds=1_800_000_000)
    await metadata.LogMetrics(
        md.LogMetricsRequest(model_version=version.name, points=[point("loss", 0.2, 10, time=at)])
    )
    late = await metadata.LogMetrics(
        md.LogMetricsRequest(model_version=version.name, points=[point("loss", 0.9, 5)])
    )
    assert dict(late.metrics) == {"loss": 0.2}
    assert [p.step for p in await history(metadata, version.name, "loss")] == [10, 5]


async def test_log_metrics_is_idempotent_on_request_id(metadata: MetadataStub) -> None:
    version = await new_version(metadata)
    request = md.LogMetricsRequest(
        model_version=version.name,
        points=[point("loss", 0.5, 1), point("loss", 0.4, 2)],
        request_id="epoch-2",
    )
    await metadata.LogMetrics(request)
    await metadata.LogMetrics(request)
    assert [p.step for p in await history(metadata, version.name, "loss")] == [1, 2]


@pytest.mark.parametrize(
    ("points", "field"),
    [
        ([point("loss", math.nan)], "points[0].value"),
        ([point("ok", 1.0), point("loss", math.inf)], "points[1].value"),
        ([point("", 1.0)], "points[0].key"),
        ([point("k" * 300, 1.0)], "points[0].key"),
        ([], "points"),
        ([point("loss", 1.0, i) for i in range(1001)], "points"),
    ],
)
async def test_bad_metric_points(
    metadata: MetadataStub, points: list[model_pb2.MetricPoint], field: str
) -> None:
    version = await new_version(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.LogMetrics(md.LogMetricsRequest(model_version=version.name, points=points))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == [field]


# Compare


async def test_compare_aligns_metrics_and_params_and_marks_differences(metadata: MetadataStub) -> None:
    model = await metadata.CreateModel(md.CreateModelRequest(parent="namespaces/compare", model_id=unique()))
    specs: list[tuple[dict[str, float], dict[str, Any]]] = [
        ({"accuracy": 0.8, "loss": 0.5}, {"optimizer": {"lr": 0.01, "name": "adam"}, "layers": [64, 32]}),
        ({"accuracy": 0.9}, {"optimizer": {"lr": 0.01, "name": "sgd"}, "beta.1": 0.9, "layers": [64, 32]}),
    ]
    names = []
    for metrics, params in specs:
        created = await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model.name,
                model_version=model_pb2.ModelVersion(metrics=metrics, params=struct(params)),
            )
        )
        names.append(created.name)
    reply = await metadata.CompareModelVersions(md.CompareModelVersionsRequest(names=list(reversed(names))))
    assert [v.name for v in reply.model_versions] == list(reversed(names))

    def table(rows: Any) -> dict[str, tuple[list[Any], bool]]:
        out = {}
        for row in rows:
            values = []
            for v in row.values:
                kind = v.WhichOneof("kind")
                values.append(
                    None
                    if kind == "null_value"
                    else list(v.list_value)
                    if kind == "list_value"
                    else getattr(v, kind)
                )
            out[row.key] = (values, row.differs)
        return out

    assert table(reply.metrics) == {"accuracy": ([0.9, 0.8], True), "loss": ([None, 0.5], True)}
    assert table(reply.params) == {
        "`beta.1`": ([0.9, None], True),
        "layers": ([[64.0, 32.0], [64.0, 32.0]], False),
        "optimizer.lr": ([0.01, 0.01], False),
        "optimizer.name": (["sgd", "adam"], True),
    }

    for names_, field in [
        ([names[0]], "names"),
        ([names[0], "bad"], "names[1]"),
        ([names[0], names[0]], "names"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.CompareModelVersions(md.CompareModelVersionsRequest(names=names_))
        assert error_info(caught.value)[1] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CompareModelVersions(
            md.CompareModelVersionsRequest(names=[names[0], f"{model.name}/versions/9"])
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_versions_of_a_deleted_model_leave_namespace_pages_intact(metadata: MetadataStub) -> None:
    namespace = unique("ns")
    models = []
    for model_id in ("a", "b", "c"):
        model = await metadata.CreateModel(
            md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id=model_id)
        )
        for _ in range(2):
            await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
        models.append(model)
    await metadata.DeleteModel(md.DeleteModelRequest(name=models[1].name))
    everywhere = f"namespaces/{namespace}/models/-"
    for page_size in (1, 2, 3, 100):
        assert await search(metadata, everywhere, page_size=page_size) == ["a/1", "a/2", "c/1", "c/2"]
    assert await search(metadata, everywhere, page_size=2, show_deleted=True) == [
        "a/1",
        "a/2",
        "b/1",
        "b/2",
        "c/1",
        "c/2",
    ]
