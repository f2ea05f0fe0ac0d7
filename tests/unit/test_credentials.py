"""Where the SDK finds its credential: the order of the sources, the credentials file's mode and
format, and the local admin fallback that only a loopback address gets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from modelreg import AsyncClient, ClientSettings, credentials
from modelreg.connection import Connection
from modelreg.credentials import CredentialError, CredentialsFile
from modelreg_api.addresses import ServiceAddresses, is_loopback

LOCAL = "127.0.0.1:50051"
REMOTE = "registry.example.com:443"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with every file source in place, so each test removes what it does not want."""
    config, data = tmp_path / "config", tmp_path / "data"
    data.mkdir()
    (data / "admin.token").write_text("mrt_admin\n")
    store = CredentialsFile(config / "modelreg" / "credentials")
    store.save(LOCAL, "mrt_login-local", "user:alice@example.com")
    store.save(REMOTE, "mrt_login-remote", "user:alice@example.com")
    (tmp_path / "token-file").write_text("mrt_from-file\n")
    return {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(config),
        "MODELREG_DATA_DIR": str(data),
        "MODELREG_TOKEN": "mrt_from-env",
        "MODELREG_TOKEN_FILE": str(tmp_path / "token-file"),
    }


def found(env: dict[str, str], address: str = LOCAL) -> tuple[str, str]:
    settings = ClientSettings.from_environment(env, metadata_addr=address)
    return settings.token, settings.token_source


def test_sources_in_order_each_used_when_the_ones_before_are_unset(
    env: dict[str, str], tmp_path: Path
) -> None:
    explicit = ClientSettings.from_environment(env, credential=credentials.given("mrt_explicit", "argument"))
    assert explicit.token == "mrt_explicit"
    assert found(env) == ("mrt_from-env", "MODELREG_TOKEN")
    del env["MODELREG_TOKEN"]
    assert found(env) == ("mrt_from-file", f"MODELREG_TOKEN_FILE {tmp_path / 'token-file'}")
    del env["MODELREG_TOKEN_FILE"]
    credentials_file = tmp_path / "config" / "modelreg" / "credentials"
    assert found(env) == ("mrt_login-local", f"credentials file {credentials_file}")
    assert found(env, REMOTE)[0] == "mrt_login-remote"  # keyed by the metadata address
    CredentialsFile(credentials_file).remove(LOCAL)
    token, source = found(env)
    assert token == "mrt_admin"
    assert "admin" in source
    (tmp_path / "data" / "admin.token").unlink()
    assert found(env) == ("", "")


def test_an_empty_variable_counts_as_unset(env: dict[str, str]) -> None:
    env["MODELREG_TOKEN"] = ""
    assert found(env)[0] == "mrt_from-file"


def test_the_local_admin_credential_is_for_loopback_addresses_only(env: dict[str, str]) -> None:
    for key in ("MODELREG_TOKEN", "MODELREG_TOKEN_FILE"):
        del env[key]
    env["XDG_CONFIG_HOME"] = str(Path(env["HOME"]) / "no-config")
    for address in ("127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.0.0.9:7", "dns:///localhost:5"):
        assert found(env, address)[0] == "mrt_admin", address
    for address in (REMOTE, "10.0.0.1:50051", "[2001:db8::1]:443", "localhost.example.com:1"):
        assert found(env, address) == ("", ""), address


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost", True),
        ("LOCALHOST:1", True),
        ("[::1]:50051", True),
        ("ipv4:127.0.0.1:1", True),
        ("unix:/tmp/modelreg.sock", False),  # not a network address: no local admin fallback
        ("0.0.0.0:50051", False),
        ("192.168.1.2:50051", False),
        ("modelreg-metadata:50051", False),
        ("[::ffff:10.0.0.1]:1", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_credentials_file_others_can_access_is_refused(
    env: dict[str, str], tmp_path: Path, mode: int
) -> None:
    del env["MODELREG_TOKEN"], env["MODELREG_TOKEN_FILE"]
    path = tmp_path / "config" / "modelreg" / "credentials"
    path.chmod(mode)
    with pytest.raises(CredentialError) as refused:
        found(env)
    assert refused.value.reason == "CREDENTIALS_FILE_TOO_OPEN"
    assert f"chmod 600 {path}" in refused.value.message
    assert f"{mode:04o}" in refused.value.message


def test_a_refused_credentials_file_does_not_matter_when_a_source_before_it_is_set(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "config" / "modelreg" / "credentials").chmod(0o644)
    assert found(env)[0] == "mrt_from-env"


def test_login_writes_0600_in_a_0700_directory_and_logout_removes_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "config" / "modelreg" / "credentials"
    store = CredentialsFile(path)
    assert store.logins() == {}
    store.save("a:1", "mrt_one", "user:a")
    store.save("b:2", "mrt_two", "user:b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert {address: login.token for address, login in store.logins().items()} == {
        "a:1": "mrt_one",
        "b:2": "mrt_two",
    }
    store.save("a:1", "mrt_three", "user:a")  # a second login replaces the first
    assert store.credential("a:1") is not None
    assert store.credential("a:1").token == "mrt_three"  # type: ignore[union-attr]
    removed = store.remove("a:1")
    assert removed is not None
    assert removed.principal == "user:a"
    assert store.remove("a:1") is None
    assert list(store.logins()) == ["b:2"]
    store.remove("b:2")
    assert not path.exists()  # nothing left to keep
    assert not list(path.parent.iterdir())  # no temporary file left behind


def test_a_credentials_file_not_written_by_login_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text('{"a:1": "mrt_bare-string"}')
    path.chmod(0o600)
    with pytest.raises(CredentialError, match="not what 'modelreg login' writes"):
        CredentialsFile(path).logins()


def test_a_source_that_is_set_but_unusable_is_an_error_not_the_next_source(env: dict[str, str]) -> None:
    del env["MODELREG_TOKEN"]
    env["MODELREG_TOKEN_FILE"] = "/nonexistent/token"
    with pytest.raises(CredentialError, match=r"MODELREG_TOKEN_FILE: cannot read /nonexistent/token"):
        found(env)
    env["MODELREG_TOKEN"] = "mrt_two\nlines"
    with pytest.raises(CredentialError) as malformed:
        found(env)
    assert malformed.value.reason == "MALFORMED_CREDENTIAL"
    assert "mrt_two" not in malformed.value.message  # a secret is never repeated


def test_the_client_argument_wins_and_an_empty_one_sends_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = AsyncClient(token="mrt_argument")
    assert (client.settings.token, client.settings.token_source) == ("mrt_argument", "the token argument")
    assert dict(Connection(client.settings).call_metadata())["authorization"] == "Bearer mrt_argument"
    assert AsyncClient().settings.token == "mrt_from-env"
    anonymous = AsyncClient(token="")
    assert anonymous.settings.token == ""
    assert "authorization" not in dict(Connection(anonymous.settings).call_metadata())


def test_the_credentials_file_is_looked_up_for_the_address_the_client_uses(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    del env["MODELREG_TOKEN"], env["MODELREG_TOKEN_FILE"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MODELREG_TOKEN", raising=False)
    monkeypatch.delenv("MODELREG_TOKEN_FILE", raising=False)
    assert AsyncClient(metadata_addr=REMOTE).settings.token == "mrt_login-remote"


def test_every_call_sends_the_bearer_credential_and_no_actor_header() -> None:
    settings = ClientSettings(addresses=ServiceAddresses(LOCAL, LOCAL), token="mrt_abc")
    metadata = dict(Connection(settings).call_metadata("req-1"))
    assert metadata == {"x-request-id": "req-1", "authorization": "Bearer mrt_abc"}


def test_the_token_never_appears_in_a_repr() -> None:
    settings = ClientSettings(token="mrt_0123456789abcdef_secret")
    assert "secret" not in repr(settings)
    assert "secret" not in repr(credentials.given("mrt_0123456789abcdef_secret", "argument"))
