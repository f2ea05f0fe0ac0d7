"""Input that used to crash a request (INTERNAL or UNKNOWN, a long traceback in the log) is
INVALID_ARGUMENT naming the field, with a short message and a small log line (issue 16).

One test per kind of input, each through gRPC against the session's stack.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from modelreg_local.stack import LocalStack
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import metadata_service_pb2 as md
from modelregistry.v1 import model_pb2

from tests.support import ACTOR, error_info, new_model, new_version

if TYPE_CHECKING:
    from tests.support import AccessStub, MetadataStub

pytestmark = pytest.mark.integration

MAX_LOG_BYTES_PER_REFUSAL = 4096
MAX_MESSAGE_CHARS = 400


@contextmanager
def small_log(stack: LocalStack) -> Iterator[None]:
    """The metadata service logs what follows in a few lines: no traceback."""
    assert stack.metadata is not None
    path = stack.metadata.log_path
    before = path.stat().st_size
    yield
    with path.open("rb") as log:
        log.seek(before)
        written = log.read()
    assert b"Traceback" not in written, written[:2000]
    assert len(written) < MAX_LOG_BYTES_PER_REFUSAL, written[:2000]


def assert_invalid(error: grpc.aio.AioRpcError, field: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), (error.details() or "")[:300])
    reason, fields = error_info(error)
    assert reason, "every refusal carries ErrorInfo"
    assert fields == [field], fields
    assert len(error.details() or "") < MAX_MESSAGE_CHARS


DEEP_FILTERS = {
    "parentheses-500": "(" * 500 + "name = 'x'" + ")" * 500,
    "parentheses-2000": "(" * 2000 + "name = 'x'" + ")" * 2000,
    "not-1000": "NOT " * 1000 + "name = 'x'",
    "unclosed-4000": "(" * 4000,
}


@pytest.mark.parametrize("text", DEEP_FILTERS.values(), ids=DEEP_FILTERS.keys())
async def test_deeply_nested_filter_is_a_syntax_error(
    metadata: MetadataStub, stack: LocalStack, text: str
) -> None:
    model = await new_model(metadata)
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModels(md.ListModelsRequest(parent="namespaces/team-a", filter=text))
    assert_invalid(caught.value, "filter")
    assert "position" in (caught.value.details() or "")
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListModelVersions(md.ListModelVersionsRequest(parent=model.name, filter=text))
    assert_invalid(caught.value, "filter")


def _params(value: Any) -> struct_pb2.Struct:
    params = struct_pb2.Struct()
    params.update({"optimizer": {"schedule": [1.0, value]}})
    return params


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_params_must_be_finite_numbers(
    metadata: MetadataStub, stack: LocalStack, number: float
) -> None:
    model = await new_model(metadata)
    field = "model_version.params.optimizer.schedule[1]"
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModelVersion(
            md.CreateModelVersionRequest(
                parent=model.name, model_version=model_pb2.ModelVersion(params=_params(number))
            ),
            metadata=ACTOR,
        )
    assert_invalid(caught.value, field)
    assert error_info(caught.value)[0] == "NON_FINITE_PARAM"

    version = await new_version(metadata)
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.UpdateModelVersion(
            md.UpdateModelVersionRequest(
                model_version=model_pb2.ModelVersion(name=version.name, params=_params(number))
            ),
            metadata=ACTOR,
        )
    assert_invalid(caught.value, field)
    stored = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name), metadata=ACTOR)
    assert stored.params == version.params  # nothing changed


async def test_timestamps_out_of_the_protobuf_range_are_refused(
    metadata: MetadataStub, access: AccessStub, stack: LocalStack
) -> None:
    version = await new_version(metadata)
    far = timestamp_pb2.Timestamp(seconds=10**12)
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.LogMetrics(
            md.LogMetricsRequest(
                model_version=version.name,
                points=[
                    model_pb2.MetricPoint(key="auc", value=0.9),
                    model_pb2.MetricPoint(key="auc", time=far),
                ],
            ),
            metadata=ACTOR,
        )
    assert_invalid(caught.value, "points[1].time")

    for seconds in (2**62, -(2**62)):
        with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.GetStateAtTime(
                md.GetStateAtTimeRequest(name=version.name, time=timestamp_pb2.Timestamp(seconds=seconds)),
                metadata=ACTOR,
            )
        assert_invalid(caught.value, "time")

    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.ListEvents(
            md.ListEventsRequest(end_time=timestamp_pb2.Timestamp(seconds=1, nanos=-1)), metadata=ACTOR
        )
    assert_invalid(caught.value, "end_time")

    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await access.CreateApiToken(
            acc.CreateApiTokenRequest(ttl=duration_pb2.Duration(seconds=2**62)), metadata=ACTOR
        )
    assert_invalid(caught.value, "ttl")


def _with_key(token: str, key: list[Any]) -> str:
    """The token with its fingerprint kept and its key replaced (what a tampering client sends)."""
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    payload["k"] = key
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_page_token_keys_out_of_range_are_refused(metadata: MetadataStub, stack: LocalStack) -> None:
    await new_model(metadata)  # at least two events exist
    await new_model(metadata)
    first = await metadata.ListEvents(md.ListEventsRequest(page_size=1), metadata=ACTOR)
    assert first.next_page_token
    keys: list[list[Any]] = [[2**70], [-(2**70)], [1e308 * 10], [[[[[[1]]]]]]]
    for key in keys:
        with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.ListEvents(
                md.ListEventsRequest(page_size=1, page_token=_with_key(first.next_page_token, key)),
                metadata=ACTOR,
            )
        assert_invalid(caught.value, "page_token")

    await new_model(metadata, "page-keys")
    await new_model(metadata, "page-keys")
    models = await metadata.ListModels(
        md.ListModelsRequest(parent="namespaces/page-keys", page_size=1), metadata=ACTOR
    )
    assert models.next_page_token
    sort_keys: list[list[Any]] = [[["u", 2**70], "x"], [["u", -(2**64)], "x"]]
    for key in sort_keys:
        with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.ListModels(
                md.ListModelsRequest(
                    parent="namespaces/page-keys",
                    page_size=1,
                    page_token=_with_key(models.next_page_token, key),
                ),
                metadata=ACTOR,
            )
        assert_invalid(caught.value, "page_token")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field in protobuf wire format."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_struct(levels: int) -> bytes:
    """A Struct {"a": {"a": ... {"a": "leaf"}}}, `levels` deep, as wire bytes (the Python protobuf
    library refuses to build one this deep itself)."""
    struct = _field(1, _field(1, b"a") + _field(2, _field(3, b"leaf")))  # fields {key, string_value}
    for _ in range(levels - 1):
        struct = _field(1, _field(1, b"a") + _field(2, _field(5, struct)))  # value.struct_value
    return struct


@pytest.mark.parametrize("levels", [50, 200])
async def test_request_nested_too_deep_to_decode_is_invalid_argument(
    metadata_channel: grpc.aio.Channel, metadata: MetadataStub, stack: LocalStack, levels: int
) -> None:
    model = await new_model(metadata)
    version = _field(6, _nested_struct(levels))  # ModelVersion.params
    request = _field(1, model.name.encode()) + _field(2, version)
    call = metadata_channel.unary_unary(
        "/modelregistry.v1.MetadataService/CreateModelVersion",
        request_serializer=None,
        response_deserializer=None,
    )
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=ACTOR)
    assert_invalid(caught.value, "request")
    assert error_info(caught.value)[0] == "MALFORMED_REQUEST"


async def test_a_long_invalid_id_is_quoted_by_a_short_prefix(
    metadata: MetadataStub, stack: LocalStack
) -> None:
    long_id = "X" * 10_000
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.CreateModel(
            md.CreateModelRequest(parent="namespaces/team-a", model_id=long_id), metadata=ACTOR
        )
    assert_invalid(caught.value, "model_id")
    with small_log(stack), pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.GetModel(
            md.GetModelRequest(name=f"namespaces/team-a/models/{long_id}"), metadata=ACTOR
        )
    assert_invalid(caught.value, "name")
    trailing: Any = caught.value.trailing_metadata() or ()
    trailers = sum(len(value) for _, value in trailing)
    assert trailers < 2048
