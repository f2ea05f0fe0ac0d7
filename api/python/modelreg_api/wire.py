"""The byte-carrying messages of the artifact service, encoded and decoded without copies.

`WriteUploadRequest`, `UploadFileRequest` and `DownloadFileResponse` carry a file's bytes as
field 3 (`data`) with their offset as field 2. Building such a message with the protobuf
runtime copies `data` into the message, serializing copies it again, and on the receiving side
parsing copies it once more and every read of `message.data` copies it again. At hundreds of
MB/s those copies are a large share of a transfer's CPU, which the client, the service and the
object store share on small machines. So the data messages are written and read here directly
in protobuf's wire format; every other message (the first of a stream, carrying a session name
or a file's manifest entry) goes through the protobuf runtime as usual.
"""

from __future__ import annotations

_OFFSET_TAG = b"\x10"  # field 2, varint
_DATA_TAG = b"\x1a"  # field 3, length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_data(offset: int, data: bytes | memoryview) -> bytes:
    """The message `{offset: offset, data: data}` (fields 2 and 3), with one copy of `data`.

    Parses as any of the three data messages; an offset of 0 is written, which protobuf
    accepts as the default value written explicitly.
    """
    return b"".join((_OFFSET_TAG, _varint(offset), _DATA_TAG, _varint(len(data)), data))


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(raw):
        byte = raw[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7
    raise ValueError("truncated varint")


def decode_data(raw: bytes) -> tuple[int, memoryview] | None:
    """`(offset, data)` of a message made of exactly fields 2 and 3 in that order (as
    `encode_data` writes them), `data` a view into `raw`; None for any other message, which
    the caller parses with the protobuf runtime."""
    if raw[:1] != _OFFSET_TAG:
        return None
    try:
        offset, position = _read_varint(raw, 1)
        if raw[position : position + 1] != _DATA_TAG:
            return None
        length, position = _read_varint(raw, position + 1)
    except ValueError:
        return None
    if position + length != len(raw):
        return None
    return offset, memoryview(raw)[position:]
