"""Resource names of the modelregistry.v1 API, parsed and validated in one place.

Services, the SDK and the CLI all use these, so a name accepted by one is accepted by all.
Names follow AIP-122: `namespaces/{namespace}/models/{model}/versions/{number}` and
`namespaces/{namespace}/models/{model}/aliases/{alias}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelreg_api.errors import quoted

NAMESPACE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
MODEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
ALIAS_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MAX_VERSION_NUMBER = 2**53  # JSON-safe integers, far beyond any real model's history


class InvalidResourceName(ValueError):
    """A resource name that does not parse; `field` names the request field that carried it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class NamespaceName:
    namespace: str

    def __str__(self) -> str:
        return f"namespaces/{self.namespace}"


@dataclass(frozen=True, slots=True)
class ModelName:
    namespace: str
    model: str

    def __str__(self) -> str:
        return f"namespaces/{self.namespace}/models/{self.model}"

    def version(self, number: int) -> ModelVersionName:
        return ModelVersionName(self.namespace, self.model, number)

    def alias(self, alias: str) -> AliasName:
        return AliasName(self.namespace, self.model, alias)


@dataclass(frozen=True, slots=True)
class ModelVersionName:
    namespace: str
    model: str
    number: int

    @property
    def model_name(self) -> ModelName:
        return ModelName(self.namespace, self.model)

    def __str__(self) -> str:
        return f"namespaces/{self.namespace}/models/{self.model}/versions/{self.number}"


@dataclass(frozen=True, slots=True)
class AliasName:
    namespace: str
    model: str
    alias: str

    @property
    def model_name(self) -> ModelName:
        return ModelName(self.namespace, self.model)

    def __str__(self) -> str:
        return f"namespaces/{self.namespace}/models/{self.model}/aliases/{self.alias}"


def _check_id(field: str, kind: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not value:
        raise InvalidResourceName(field, f"{kind} id is empty")
    if not pattern.fullmatch(value) or ".." in value:
        raise InvalidResourceName(field, f"{kind} id {quoted(value)} is invalid: {rule}")
    return value


def check_namespace_id(value: str, field: str = "namespace") -> str:
    return _check_id(
        field,
        "namespace",
        value,
        NAMESPACE_ID,
        "use 1-63 lowercase letters, digits or '-', starting with a letter",
    )


def check_model_id(value: str, field: str = "model_id") -> str:
    return _check_id(
        field,
        "model",
        value,
        MODEL_ID,
        "use 1-128 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'",
    )


def check_alias_id(value: str, field: str = "alias") -> str:
    return _check_id(
        field,
        "alias",
        value,
        ALIAS_ID,
        "use 1-63 lowercase letters, digits, '_' or '-', starting with a letter",
    )


def _segments(name: str, field: str, shape: str, count: int) -> list[str]:
    if not name:
        raise InvalidResourceName(field, f"is empty; expected {shape}")
    parts = name.split("/")
    if len(parts) != count:
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    return parts


def parse_namespace_name(name: str, field: str = "parent") -> NamespaceName:
    shape = "namespaces/{namespace}"
    parts = _segments(name, field, shape, 2)
    if parts[0] != "namespaces":
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    return NamespaceName(check_namespace_id(parts[1], field))


def parse_model_name(name: str, field: str = "name") -> ModelName:
    shape = "namespaces/{namespace}/models/{model}"
    parts = _segments(name, field, shape, 4)
    if parts[0] != "namespaces" or parts[2] != "models":
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    return ModelName(check_namespace_id(parts[1], field), check_model_id(parts[3], field))


def parse_model_version_name(name: str, field: str = "name") -> ModelVersionName:
    shape = "namespaces/{namespace}/models/{model}/versions/{number}"
    parts = _segments(name, field, shape, 6)
    if parts[4] != "versions":
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    model = parse_model_name("/".join(parts[:4]), field)
    number = parts[5]
    if not number.isascii() or not number.isdigit() or number.startswith("0"):
        raise InvalidResourceName(field, f"version {quoted(number)} is not a positive integer")
    if len(number) > len(str(MAX_VERSION_NUMBER)) or int(number) > MAX_VERSION_NUMBER:
        raise InvalidResourceName(field, f"version {quoted(number)} is out of range")
    return model.version(int(number))


def parse_alias_name(name: str, field: str = "name") -> AliasName:
    shape = "namespaces/{namespace}/models/{model}/aliases/{alias}"
    parts = _segments(name, field, shape, 6)
    if parts[4] != "aliases":
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    model = parse_model_name("/".join(parts[:4]), field)
    return model.alias(check_alias_id(parts[5], field))


def parse_version_reference(name: str, field: str = "model_version") -> ModelVersionName | AliasName:
    """A version by number (`.../versions/3`) or by alias (`.../aliases/production`)."""
    parts = name.split("/")
    if len(parts) == 6 and parts[4] == "aliases":
        return parse_alias_name(name, field)
    return parse_model_version_name(name, field)


MAX_FILE_PATH_BYTES = 1024


def check_file_path(path: str, field: str = "path") -> str:
    """A file path inside a model version: relative, normalized, portable.

    Paths never become object-store keys (blobs are stored by digest), but they become file
    names when a version is downloaded, so anything that could escape the target directory or
    mean different files on different systems is refused.
    """
    if not path:
        raise InvalidResourceName(field, "file path is empty")
    if len(path.encode()) > MAX_FILE_PATH_BYTES:
        raise InvalidResourceName(field, f"file path is longer than {MAX_FILE_PATH_BYTES} bytes")
    if "\\" in path:
        raise InvalidResourceName(
            field, f"file path {quoted(path)} contains a backslash; use '/' between segments"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise InvalidResourceName(field, f"file path {quoted(path)} contains a control character")
    if path.startswith("/"):
        raise InvalidResourceName(
            field, f"file path {quoted(path)} is absolute; it must be relative to the version"
        )
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidResourceName(
                field, f"file path {quoted(path)} has an empty, '.' or '..' segment; it must be normalized"
            )
    return path


# People type short references; the API takes resource names. Both spellings are accepted
# everywhere a person or a script names a model or a version (SDK arguments, CLI arguments).
_SHORT_MODEL = "NAMESPACE/MODEL"
_SHORT_VERSION = "NAMESPACE/MODEL/VERSION or NAMESPACE/MODEL@ALIAS"


def parse_model_ref(text: str, field: str = "model") -> ModelName:
    """`namespace/model` or `namespaces/{namespace}/models/{model}`."""
    if text.startswith("namespaces/"):
        return parse_model_name(text, field)
    parts = text.split("/")
    if len(parts) != 2:
        raise InvalidResourceName(field, f"{quoted(text)} is not of the form {_SHORT_MODEL}")
    return ModelName(check_namespace_id(parts[0], field), check_model_id(parts[1], field))


def parse_version_ref(text: str, field: str = "version") -> ModelVersionName | AliasName:
    """A version by number or by alias, short or long.

    `namespace/model/3`, `namespace/model@production`, or the resource names
    `namespaces/{ns}/models/{model}/versions/{number}` and `.../aliases/{alias}`.
    """
    if text.startswith("namespaces/"):
        return parse_version_reference(text, field)
    if "@" in text:
        model, _, alias = text.partition("@")
        return parse_model_ref(model, field).alias(check_alias_id(alias, field))
    parts = text.split("/")
    if len(parts) != 3:
        raise InvalidResourceName(field, f"{quoted(text)} is not of the form {_SHORT_VERSION}")
    model_name = parse_model_ref("/".join(parts[:2]), field)
    return parse_model_version_name(f"{model_name}/versions/{parts[2]}", field)


def short_ref(name: ModelName | ModelVersionName | AliasName) -> str:
    """The short spelling of a name, as `parse_model_ref`/`parse_version_ref` accept it."""
    if isinstance(name, ModelVersionName):
        return f"{name.namespace}/{name.model}/{name.number}"
    if isinstance(name, AliasName):
        return f"{name.namespace}/{name.model}@{name.alias}"
    return f"{name.namespace}/{name.model}"


UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class UploadSessionName:
    """`uploads/{upload}`: a resumable upload session of the artifact service."""

    upload: str

    def __str__(self) -> str:
        return f"uploads/{self.upload}"


def parse_upload_session_name(name: str, field: str = "name") -> UploadSessionName:
    shape = "uploads/{upload}"
    parts = _segments(name, field, shape, 2)
    if parts[0] != "uploads":
        raise InvalidResourceName(field, f"{quoted(name)} is not of the form {shape}")
    if not UPLOAD_ID.fullmatch(parts[1]):
        raise InvalidResourceName(field, f"upload id {quoted(parts[1])} is not one this service issued")
    return UploadSessionName(parts[1])
