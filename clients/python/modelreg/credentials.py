"""Where the client finds the credential it presents, and the credentials file `login` writes.

A credential is an API token (`mrt_<id>_<secret>`) or a JWT, sent on every call as
`authorization: Bearer <credential>`. The first of these sources that is set wins:

1. the `token=` argument of `Client`/`AsyncClient` (the CLI's `--token-file`);
2. `MODELREG_TOKEN`, the credential itself (CI secrets);
3. `MODELREG_TOKEN_FILE`, a file holding it (a mounted Kubernetes secret);
4. the credentials file, `${XDG_CONFIG_HOME:-~/.config}/modelreg/credentials`, written by
   `modelreg login`: JSON keyed by metadata service address;
5. only when the metadata address is a loopback address: the local stack's bootstrap admin
   credential, `${MODELREG_DATA_DIR:-.data}/admin.token`, if that file exists.

A source that is set but unusable (an unreadable file, an empty one) is an error, never a silent
step to the next source: falling through would act as somebody else. The credentials file holds
secrets for several registries, so like ssh with a private key, it is refused while group or
others have any access to it. The fallback of step 5 is limited to loopback addresses so the
local admin's secret is never sent to another machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelreg_api.addresses import is_loopback

from modelreg.errors import ModelregError

# Names of variables and files, not secrets (S105).
TOKEN_ENV = "MODELREG_TOKEN"  # noqa: S105
TOKEN_FILE_ENV = "MODELREG_TOKEN_FILE"  # noqa: S105
DATA_DIR_ENV = "MODELREG_DATA_DIR"
DEFAULT_DATA_DIR = ".data"
LOCAL_ADMIN_TOKEN = "admin.token"  # noqa: S105


class CredentialError(ModelregError):
    """A credential source is set but cannot be used (unreadable, empty, too widely readable)."""


@dataclass(frozen=True, slots=True)
class Credential:
    # Never in a repr or a log line.
    token: str = field(repr=False)
    # Where it came from, for messages: `MODELREG_TOKEN`, `credentials file ~/.config/...`.
    source: str


def credentials_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "modelreg" / "credentials"


def local_admin_token_path(env: Mapping[str, str]) -> Path:
    return Path(env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser() / LOCAL_ADMIN_TOKEN


def checked_token(token: str, source: str) -> str:
    """`token` without surrounding whitespace; refused when it cannot be a header value."""
    token = token.strip()
    if not token:
        raise CredentialError(f"{source} is empty", reason="EMPTY_CREDENTIAL")
    # gRPC metadata values are printable ASCII; a pasted secret with a line break or a
    # non-ASCII quote would otherwise fail inside the transport with an obscure message.
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        raise CredentialError(
            f"{source} is not a credential (it contains spaces, line breaks or non-ASCII characters)",
            reason="MALFORMED_CREDENTIAL",
        )
    return token


def given(token: str, source: str) -> Credential:
    """A credential passed in explicitly; an empty one means "send none" (and says so)."""
    if not token.strip():
        return Credential("", f"{source} (empty: no credential)")
    return Credential(checked_token(token, source), source)


def read_token_file(path: Path, source: str) -> Credential:
    """The credential in `path` (the token and optionally a newline); `source` says which
    setting named the file, e.g. `MODELREG_TOKEN_FILE`. Errors name the file, not the setting."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(f"cannot read {path}: {exc.strerror}", reason="UNREADABLE_CREDENTIAL") from None
    except UnicodeDecodeError:
        raise CredentialError(f"{path} is not a text file", reason="MALFORMED_CREDENTIAL") from None
    return Credential(checked_token(text, str(path)), f"{source} {path}")


def _in_context(error: CredentialError, source: str) -> CredentialError:
    return CredentialError(f"{source}: {error.message}", reason=error.reason)


@dataclass(frozen=True, slots=True)
class StoredLogin:
    token: str = field(repr=False)
    # Who the token was for when `login` checked it (shown by `logout`).
    principal: str = ""


class CredentialsFile:
    """`modelreg login`'s store: `{"<metadata address>": {"token": ..., "principal": ...}}`.

    Written with mode 0600 in a 0700 directory, replaced atomically so a concurrent reader sees
    the old file or the new one; refused on read while group or others have any access.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def logins(self) -> dict[str, StoredLogin]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialError(
                f"credentials file {self.path}: {exc.strerror}", reason="UNREADABLE_CREDENTIAL"
            ) from None
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise CredentialError(
                f"credentials file {self.path} is accessible by group or others (mode {mode:04o}), "
                f"so it is not used: run 'chmod 600 {self.path}' (or remove it and sign in again)",
                reason="CREDENTIALS_FILE_TOO_OPEN",
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CredentialError(
                f"credentials file {self.path}: {exc.strerror}", reason="UNREADABLE_CREDENTIAL"
            ) from None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("token"), str) for entry in data.values()
        ):
            raise CredentialError(
                f"credentials file {self.path} is not what 'modelreg login' writes; "
                "remove it and sign in again",
                reason="MALFORMED_CREDENTIAL",
            )
        return {
            address: StoredLogin(entry["token"], str(entry.get("principal", "")))
            for address, entry in data.items()
        }

    def credential(self, address: str) -> Credential | None:
        login = self.logins().get(address)
        if login is None:
            return None
        source = f"credentials file {self.path}"
        return Credential(checked_token(login.token, source), source)

    def save(self, address: str, token: str, principal: str) -> None:
        logins = self.logins()
        logins[address] = StoredLogin(token, principal)
        self._write(logins)

    def remove(self, address: str) -> StoredLogin | None:
        """Forget the login for `address`; returns it, or None when there was none."""
        logins = self.logins()
        removed = logins.pop(address, None)
        if removed is not None:
            self._write(logins)
        return removed

    def _write(self, logins: Mapping[str, StoredLogin]) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        if not logins:
            self.path.unlink(missing_ok=True)
            return
        data = {
            address: {"token": login.token, "principal": login.principal} for address, login in logins.items()
        }
        temporary = directory / f".credentials.{uuid.uuid4().hex}"
        # Created 0600 from the start: the secret is never readable by others, not even briefly.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=2, sort_keys=True)
                stream.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def find_credential(env: Mapping[str, str], metadata_addr: str) -> Credential | None:
    """The credential for the registry at `metadata_addr` from sources 2 to 5 (see the module's
    docstring), or None when no source is set."""
    if env.get(TOKEN_ENV):
        return Credential(checked_token(env[TOKEN_ENV], TOKEN_ENV), TOKEN_ENV)
    if env.get(TOKEN_FILE_ENV):
        try:
            return read_token_file(Path(env[TOKEN_FILE_ENV]).expanduser(), TOKEN_FILE_ENV)
        except CredentialError as exc:
            raise _in_context(exc, TOKEN_FILE_ENV) from None
    stored = CredentialsFile(credentials_path(env)).credential(metadata_addr)
    if stored is not None:
        return stored
    if is_loopback(metadata_addr):
        admin = local_admin_token_path(env)
        if admin.is_file():
            source = "the local stack's admin credential"
            try:
                return read_token_file(admin, source)
            except CredentialError as exc:
                raise _in_context(exc, source) from None
    return None
