"""The hand-encoded data messages (`modelreg_api.wire`) against the protobuf runtime."""

from __future__ import annotations

import pytest
from modelreg_api import wire
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import model_pb2

SIZES = [(0, 0), (1, 1), (127, 128), (128, 127), (2**40 + 5, 1024 * 1024)]


def _data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@pytest.mark.parametrize(("offset", "size"), SIZES)
def test_encoded_data_messages_parse_as_each_data_message(offset: int, size: int) -> None:
    data = _data(size)
    encoded = wire.encode_data(offset, data)
    download = art.DownloadFileResponse.FromString(encoded)
    assert (download.offset, download.data, download.HasField("file")) == (offset, data, False)
    write = art.WriteUploadRequest.FromString(encoded)
    assert (write.write_offset, write.data, write.upload_session, write.finish_write) == (
        offset,
        data,
        "",
        False,
    )
    assert not write.HasField("crc32c")
    whole = art.UploadFileRequest.FromString(encoded)
    assert (whole.write_offset, whole.data, whole.HasField("spec")) == (offset, data, False)


@pytest.mark.parametrize(("offset", "size"), SIZES)
def test_decoding_finds_what_protobuf_wrote(offset: int, size: int) -> None:
    data = _data(size)
    for encoded in (
        art.DownloadFileResponse(offset=offset, data=data).SerializeToString(),
        wire.encode_data(offset, data),
    ):
        decoded = wire.decode_data(encoded)
        if offset == 0 and encoded[:1] != b"\x10":
            assert decoded is None  # protobuf leaves a zero offset out: parsed the ordinary way
            continue
        assert decoded is not None
        assert (decoded[0], bytes(decoded[1])) == (offset, data)


@pytest.mark.parametrize(
    "message",
    [
        art.DownloadFileResponse(file=model_pb2.ModelFile(path="a", size_bytes=3), offset=0),
        art.DownloadFileResponse(file=model_pb2.ModelFile(path="a"), offset=5, data=b"abc"),
        art.WriteUploadRequest(upload_session="uploads/x", write_offset=4, data=b"abc"),
        art.WriteUploadRequest(write_offset=4, data=b"abc", finish_write=True),
        art.WriteUploadRequest(write_offset=4, data=b"abc", crc32c=7),
        art.WriteUploadRequest(write_offset=4),
    ],
)
def test_any_other_message_is_left_to_protobuf(message: art.DownloadFileResponse) -> None:
    assert wire.decode_data(message.SerializeToString()) is None


@pytest.mark.parametrize(
    "raw", [b"", b"\x10", b"\x10\x80", b"\x10\x05\x1a", b"\x10\x05\x1a\x05ab", b"\x10\x05\x1a\x01ab"]
)
def test_truncated_or_overlong_messages_are_not_taken_for_data(raw: bytes) -> None:
    assert wire.decode_data(raw) is None
