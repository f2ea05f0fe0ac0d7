"""Property: whatever a caller sends, the registry answers OK or a refusal with ErrorInfo, never
INTERNAL or UNKNOWN (issue 16).

Every RPC of MetadataService, ArtifactService, AccessService and ManifestService, taken from the
service descriptors (a new RPC is fuzzed without a change here), gets

- well-typed requests generated from its message descriptor: names of real resources and
  garbage, long and odd-unicode strings, 64-bit extremes, NaN and infinite doubles, unknown enum
  values, out-of-range timestamps, deep Structs, filters nested thousands deep;
- raw bytes: random, and Structs nested deeper than protobuf parses.

Callers are a global admin (ManifestService: the artifact service's internal credential), so
requests get past authorization into the code that handles them. Streams are short and have
deadlines; a server stream the client ends itself (its deadline, or after a few messages) is not
a refusal.

The budget is about a minute under CI (`MODELREG_FUZZ_EXAMPLES` per RPC and kind, derandomized,
so a run is reproducible); `bench/fuzz.py` runs the same for longer and writes a summary
(`MODELREG_FUZZ_REPORT`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import descriptor, message_factory, struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelreg_local.stack import INTERNAL_TOKEN_FILE, LocalStack
from modelregistry.v1 import (
    access_service_pb2,
    artifact_service_pb2,
    manifest_service_pb2,
    metadata_service_pb2,
    model_pb2,
)

from tests.support import bearer, credential_for, unique

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MODELREG_FUZZ_EXAMPLES", "80"))
RAW_EXAMPLES = max(4, EXAMPLES // 4)
REPORT = os.environ.get("MODELREG_FUZZ_REPORT", "")
UNARY_TIMEOUT = 15.0
SERVER_STREAM_TIMEOUT = 0.5  # WatchEvents waits for events that may never come
STREAM_MESSAGES_READ = 3
MAX_MESSAGE_CHARS = 2048

FD = descriptor.FieldDescriptor
T = TypeVar("T")
SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (metadata_service_pb2, "MetadataService"),
        (artifact_service_pb2, "ArtifactService"),
        (access_service_pb2, "AccessService"),
        (manifest_service_pb2, "ManifestService"),
    )
]
METHODS = [method for service in SERVICES for method in service.methods]


def method_id(method: descriptor.MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


# -- what the fuzzer knows of the stack: real names to aim at ---------------------------------


@dataclass(frozen=True)
class Target:
    metadata: grpc.Channel = dataclasses.field(repr=False)
    artifacts: grpc.Channel = dataclasses.field(repr=False)
    admin: tuple[tuple[str, str], ...] = dataclasses.field(repr=False)  # credentials stay out of reports
    internal: tuple[tuple[str, str], ...] = dataclasses.field(repr=False)
    names: tuple[str, ...] = ()

    def route(self, method: descriptor.MethodDescriptor) -> tuple[grpc.Channel, Any]:
        service = method.containing_service.name
        channel = self.artifacts if service == "ArtifactService" else self.metadata
        return channel, self.internal if service == "ManifestService" else self.admin


_NAMES: list[str] = []  # filled by the `target` fixture before any strategy draws from it


@pytest.fixture(scope="module")
def target(stack: LocalStack) -> Iterator[Target]:
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    admin = bearer(credential_for("user:fuzzer@example.com"))
    internal = bearer((stack.data_root / INTERNAL_TOKEN_FILE).read_text().strip())
    with (
        grpc.insecure_channel(stack.addresses.metadata, options=options) as metadata,
        grpc.insecure_channel(stack.addresses.artifacts, options=options) as artifacts,
    ):
        names = _seed(metadata, artifacts, admin)
        _NAMES[:] = names
        yield Target(metadata, artifacts, admin, internal, tuple(names))
        _NAMES.clear()
    if REPORT:
        _write_report(Path(REPORT))


def _seed(metadata: grpc.Channel, artifacts: grpc.Channel, admin: Any) -> list[str]:
    """A namespace of the fuzzer's own with a model, a version, an alias and an upload session,
    so generated requests also reach resources that exist."""
    md, art = metadata_service_pb2, artifact_service_pb2
    namespace = unique("fuzz")
    stub_md = _stub(metadata, "MetadataService")
    model = stub_md["CreateModel"](
        md.CreateModelRequest(parent=f"namespaces/{namespace}", model_id="m"), admin, model_pb2.Model
    )
    version = stub_md["CreateModelVersion"](
        md.CreateModelVersionRequest(parent=model.name), admin, model_pb2.ModelVersion
    )
    alias = f"{model.name}/aliases/prod"
    stub_md["SetAlias"](md.SetAliasRequest(name=alias, model_version=version.name), admin, model_pb2.Alias)
    data = b"fuzz"
    session = _stub(artifacts, "ArtifactService")["StartUpload"](
        art.StartUploadRequest(
            spec=art.UploadSpec(
                model_version=version.name,
                path="weights.bin",
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        ),
        admin,
        art.UploadSession,
    )
    return [
        f"namespaces/{namespace}",  # the first four: what most requests name (see _strings)
        model.name,
        version.name,
        alias,
        namespace,
        f"{model.name}/versions/2",
        f"{model.name}/versions/-",
        f"namespaces/{namespace}/models/-",
        alias,
        session.name,
        "namespaces/-",
        "weights.bin",
        hashlib.sha256(data).hexdigest(),
        "user:fuzzer@example.com",
        "service:artifacts",
    ]


def _stub(channel: grpc.Channel, service: str) -> dict[str, Callable[[Message, Any, type[Message]], Any]]:
    def call(method: str) -> Callable[[Message, Any, type[Message]], Any]:
        def invoke(request: Message, metadata: Any, response: type[Message]) -> Any:
            multicallable = channel.unary_unary(
                f"/modelregistry.v1.{service}/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString,
            )
            return multicallable(request, metadata=metadata, timeout=UNARY_TIMEOUT)

        return invoke

    return {m: call(m) for m in ("CreateModel", "CreateModelVersion", "SetAlias", "StartUpload")}


# -- strategies from descriptors ----------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
_IDS = st.sampled_from(
    ["m", "m2", "prod", "staging", "1", "2", "auc", "lr", "fuzz-ns", "user:bob@example.com"]
)
_FILTERS = st.sampled_from(
    [
        "(" * 2000 + "name = 'x'" + ")" * 2000,
        "(" * 4000,
        "NOT " * 1000 + "name = 'x'",
        "metrics.auc > 0.5 AND params.lr <= 1e-3",
        "name STARTS_WITH 'm' OR tags.`a.b` IN ('x', 'y')",
        "metrics.auc > 1e999",
        "create_time > '9999-12-31T23:59:59Z' OR update_time < '0001-01-01T00:00:00Z'",
        "params.a.b.c.d.e.f.g.h.i.j = 1",
        "create_time desc, metrics.auc",
        "number desc, name, metrics.auc asc, params.lr",
    ]
)
_ODD = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "é\u0301",
        "\u202e" + "gnp.exe",
        "🦜" * 40,
        "../../etc/passwd",
        "a" * 129,
        "x" * 10_000,
        "ǅ" * 3000,
        "namespaces/" + "Z" * 5000,
        "namespaces/a/models/b/versions/" + "9" * 5000,
        "tokens/0123456789abcdef",
        "uploads/" + "f" * 32,
    ]
)
# Fields whose names say what they hold get values of that kind too (more of them get past the
# first check into the code behind it).
_BY_FIELD_NAME = {"filter": _FILTERS, "order_by": _FILTERS, "model_id": _IDS, "namespace_id": _IDS}


# Fields that name a resource mostly get one of the fuzzer's real resources.
_NAME_FIELDS = {"name", "parent", "model_version", "model", "names", "upload_session", "namespace"}


def _strings(field: descriptor.FieldDescriptor) -> st.SearchStrategy[str]:
    pool = _NAMES or ["namespaces/x", "namespaces/x/models/m", "namespaces/x/models/m/versions/1", "x"]
    names = st.sampled_from(pool)
    if field.name in _NAME_FIELDS:
        others = st.one_of(names, st.tuples(names, _TEXT).map("/".join), _TEXT, _ODD)
        namespace, model, version, alias = pool[:4]
        usual = {
            "parent": [model, namespace],
            "model_version": [version, alias],
            "model": [model],
            "namespace": [namespace.removeprefix("namespaces/"), namespace],
        }.get(field.name, [version, model, alias, namespace])
        return _mostly(st.sampled_from(usual), others)
    special = _BY_FIELD_NAME.get(field.name, _IDS)
    return _mostly(special, st.one_of(names, _TEXT, _ODD, _FILTERS), percent=50)


def _mostly(
    usual: st.SearchStrategy[T], rest: st.SearchStrategy[T], percent: int = 75
) -> st.SearchStrategy[T]:
    """`usual` in about `percent`% of the draws, else `rest` (one_of weighs its branches alike)."""
    return st.integers(0, 99).flatmap(lambda n: usual if n < percent else rest)


_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, -1, 0, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**62) if low <= v <= high]
    return st.one_of(st.integers(max(low, -2), min(high, 12)), st.sampled_from(edges), st.integers(low, high))


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), _TEXT, _ODD)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
        max_leaves=12,
    )


def deep_struct(levels: int) -> struct_pb2.Struct:
    """{"a": {"a": ...}} `levels` deep (over 49, protobuf will not parse it back)."""
    root = struct_pb2.Struct()
    current = root
    for _ in range(levels):
        current = current.fields["a"].struct_value
    current.fields["leaf"].number_value = float("nan")
    return root


def _structs() -> st.SearchStrategy[struct_pb2.Struct]:
    def build(values: dict[str, Any]) -> struct_pb2.Struct:
        out = struct_pb2.Struct()
        out.update(values)
        return out

    return st.one_of(
        st.dictionaries(_TEXT, _json_values(), max_size=4).map(build),
        st.dictionaries(_IDS, _json_values(), min_size=1, max_size=3).map(build),
        st.integers(1, 120).map(deep_struct),
    )


def _scalars(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one per field type
    if field.type == FD.TYPE_STRING:
        return _strings(field)
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type == FD.TYPE_DOUBLE:
        plain = st.floats(-1e6, 1e6)
        return st.one_of(plain, plain, st.floats(allow_nan=True, allow_infinity=True))
    if field.type == FD.TYPE_FLOAT:
        plain = st.floats(-1e6, 1e6, width=32)
        return st.one_of(plain, plain, st.floats(allow_nan=True, allow_infinity=True, width=32))
    if field.type == FD.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [v.number for v in field.enum_type.values]
        known = st.sampled_from(numbers)
        return st.one_of(known, known, st.sampled_from([max(numbers) + 1, 999, -1]))
    low, high = _INT_RANGES[field.type]
    return _ints(low, high)


MAX_DEPTH = 4


@st.composite
def messages(draw: st.DrawFn, kind: descriptor.Descriptor, depth: int = 0) -> Message:
    cls = message_factory.GetMessageClass(kind)
    if kind.full_name == "google.protobuf.Struct":
        return draw(_structs())
    out = cls()
    if depth > MAX_DEPTH:
        return out
    # Fewer fields deeper down: one bad nested field stops a request at its first check, and
    # the point is to reach the code behind the checks too.
    for field in kind.fields:
        percent = 85 if field.name in _NAME_FIELDS else 50 // (1 + depth)
        if draw(st.integers(0, 99)) < percent:
            _fill(draw, out, field, depth)
    return out


def _fill(draw: st.DrawFn, out: Message, field: descriptor.FieldDescriptor, depth: int) -> None:
    value_kind = field.message_type
    target: Any = getattr(out, field.name)
    if value_kind is not None and value_kind.GetOptions().map_entry:
        key_field, value_field = value_kind.fields_by_name["key"], value_kind.fields_by_name["value"]
        for key in draw(st.lists(_scalars(key_field), max_size=3)):
            if value_field.message_type is not None:
                target[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
            else:
                value = draw(_scalars(value_field))
                _set_quietly(target.__setitem__, key, value)
    elif field.is_repeated:
        if value_kind is not None:
            for item in draw(st.lists(messages(value_kind, depth + 1), max_size=3)):
                target.add().CopyFrom(item)
        else:
            for item in draw(st.lists(_scalars(field), max_size=4)):
                _set_quietly(target.append, item)
    elif value_kind is not None:
        getattr(out, field.name).CopyFrom(draw(messages(value_kind, depth + 1)))
    else:
        _set_quietly(setattr, out, field.name, draw(_scalars(field)))


def _set_quietly(assign: Callable[..., object], *args: Any) -> None:
    with contextlib.suppress(ValueError, TypeError):  # a value the field cannot hold: not sent
        assign(*args)


def _raw_bytes() -> st.SearchStrategy[bytes]:
    def nested(field: int, levels: int) -> bytes:
        payload = deep_struct(levels).SerializeToString()
        return _varint(field << 3 | 2) + _varint(len(payload)) + payload

    return st.one_of(
        st.binary(max_size=256),
        st.builds(nested, st.integers(1, 12), st.integers(40, 300)),
        st.binary(min_size=1, max_size=64).map(lambda b: b * 64),
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# -- calling and judging ---------------------------------------------------------------------

OUTCOMES: Counter[tuple[str, str]] = Counter()
REASONS: dict[str, Counter[str]] = {}  # per RPC: the refusals' messages, cut to what they say
FINDINGS: list[str] = []


def call(target: Target, method: descriptor.MethodDescriptor, requests: Sequence[bytes]) -> None:
    """Send `requests` (one unless the method streams them) and judge the answer."""
    channel, metadata = target.route(method)
    path = f"/{method.containing_service.full_name}/{method.name}"
    raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    code = grpc.StatusCode.OK
    try:
        if method.server_streaming:
            stream = (
                channel.stream_stream(path, **raw)(iter(requests), metadata=metadata, timeout=UNARY_TIMEOUT)
                if method.client_streaming
                else channel.unary_stream(path, **raw)(
                    requests[0], metadata=metadata, timeout=SERVER_STREAM_TIMEOUT
                )
            )
            for count, _ in enumerate(stream, start=1):
                if count >= STREAM_MESSAGES_READ:
                    stream.cancel()  # type: ignore[no-untyped-call]
                    break
        elif method.client_streaming:
            channel.stream_unary(path, **raw)(iter(requests), metadata=metadata, timeout=UNARY_TIMEOUT)
        else:
            channel.unary_unary(path, **raw)(requests[0], metadata=metadata, timeout=UNARY_TIMEOUT)
    except grpc.RpcError as error:
        code = error.code()
        said = (error.details() or "")[:90]
        REASONS.setdefault(method_id(method), Counter())[f"{code.name} {said}"] += 1
        problem = _judge(method, error)
        if problem:
            FINDINGS.append(f"{method_id(method)}: {problem}")
            OUTCOMES[(method_id(method), f"{code.name} (finding)")] += 1
            pytest.fail(f"{method_id(method)}: {problem}; requests {[r[:200] for r in requests]!r}")
    OUTCOMES[(method_id(method), code.name)] += 1


def _judge(method: descriptor.MethodDescriptor, error: Any) -> str:
    code: grpc.StatusCode = error.code()
    details = error.details() or ""
    if method.server_streaming and code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return ""  # the client's own deadline or cancel: the stream was fine
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return f"{code.name}: {details[:300]}"
    if not _has_error_info(error.trailing_metadata() or ()):
        return f"{code.name} without ErrorInfo: {details[:300]}"
    if len(details) > MAX_MESSAGE_CHARS:
        return f"{code.name} with a {len(details)}-character message"
    return ""


def _has_error_info(trailers: Sequence[tuple[str, Any]]) -> bool:
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    return True
    return False


# -- the properties --------------------------------------------------------------------------

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("method", METHODS, ids=method_id)
@FUZZ_SETTINGS
@given(data=st.data())
def test_well_typed_requests_are_answered_or_refused_with_error_info(
    target: Target, method: descriptor.MethodDescriptor, data: st.DataObject
) -> None:
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    requests = [data.draw(messages(method.input_type)).SerializeToString() for _ in range(count)]
    call(target, method, requests)


@pytest.mark.parametrize("method", METHODS, ids=method_id)
@settings(FUZZ_SETTINGS, max_examples=RAW_EXAMPLES)
@given(data=st.data())
def test_raw_bytes_are_answered_or_refused_with_error_info(
    target: Target, method: descriptor.MethodDescriptor, data: st.DataObject
) -> None:
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    call(target, method, [data.draw(_raw_bytes()) for _ in range(count)])


def test_every_rpc_of_every_service_is_fuzzed() -> None:
    assert len(METHODS) == sum(len(s.methods) for s in SERVICES) > 50
    assert {s.name for s in SERVICES} == {
        "MetadataService",
        "ArtifactService",
        "AccessService",
        "ManifestService",
    }


# -- the report (bench/fuzz.py) --------------------------------------------------------------

_STARTED = time.monotonic()


def _write_report(path: Path) -> None:
    by_method: dict[str, Counter[str]] = {}
    for (method, code), count in OUTCOMES.items():
        by_method.setdefault(method, Counter())[code] += count
    calls = sum(OUTCOMES.values())
    lines = [
        "# Fuzzing every RPC (tests/integration/test_fuzz.py)",
        "",
        f"{EXAMPLES} well-typed and {RAW_EXAMPLES} raw-bytes examples per RPC "
        f"({len(METHODS)} RPCs): {calls} calls in {time.monotonic() - _STARTED:.0f} s; "
        f"findings (INTERNAL, UNKNOWN, a refusal without ErrorInfo): {len(FINDINGS)}.",
        "",
        "| RPC | answers |",
        "|---|---|",
    ]
    for method in sorted(by_method):
        answers = ", ".join(f"{code} {n}" for code, n in sorted(by_method[method].items()))
        lines.append(f"| {method} | {answers} |")
    lines += ["", "## The most frequent refusals per RPC", ""]
    for method in sorted(REASONS):
        common = "; ".join(f"{text} ({n})" for text, n in REASONS[method].most_common(4))
        lines.append(f"- {method}: {common}")
    if FINDINGS:
        lines += ["", "## Findings", "", *(f"- {finding}" for finding in FINDINGS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
