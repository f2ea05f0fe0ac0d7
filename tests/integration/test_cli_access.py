"""`modelreg login|logout|whoami`, `tokens` and `namespaces grant|revoke|bindings` through the real
executable, against the stack with authentication on, and the exit codes of refused calls."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.command_line import Cli
from tests.support import credential_for, unique

pytestmark = pytest.mark.integration


def new_user(prefix: str) -> str:
    return f"user:{unique(prefix)}@example.com"


def test_login_stores_a_checked_token_whoami_shows_it_logout_forgets_it(cli: Cli) -> None:
    user, namespace = new_user("login"), unique("ns")
    token = credential_for(user, "editor", namespace)
    bare = cli.without_credential()
    assert "none is configured" in bare.fails(8, "whoami")

    unknown = "mrt_0123456789abcdef_" + "x" * 43
    assert "[UNAUTHENTICATED]" in bare.fails(8, "login", stdin=unknown + "\n")
    stored = Path(bare.env["XDG_CONFIG_HOME"]) / "modelreg" / "credentials"
    assert not stored.exists()  # a refused token is not kept

    signed_in = bare.ok("login", stdin=token + "\n")
    assert f"signed in to {bare.env['MODELREG_METADATA_ADDR']} as {user}" in signed_in.stdout
    assert token not in signed_in.stdout + signed_in.stderr
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700

    me = bare.json("whoami")
    assert me["principal"] == user
    assert me["authentication"] == f"token:{token.split('_')[1]}"
    assert [(b["parent"], b["principal"], b["role"]) for b in me["bindings"]] == [
        (f"namespaces/{namespace}", user, "ROLE_EDITOR")
    ]
    assert me["credential_source"] == f"credentials file {stored}"
    text = bare.ok("whoami").stdout
    assert f"principal:      {user}" in text
    assert f"credential:     credentials file {stored}" in text
    assert any(line.split()[:2] == [namespace, "editor"] for line in text.splitlines())
    bare.ok("models", "create", f"{namespace}/{unique('m')}")  # every command uses the login

    assert "signed out" in bare.ok("logout").stdout
    assert not stored.exists()
    assert "modelreg login" in bare.fails(8, "whoami")


def test_the_local_stacks_admin_is_the_fallback_on_this_machine(cli: Cli, stack: LocalStack) -> None:
    local = cli.without_credential()
    local.env["MODELREG_DATA_DIR"] = str(stack.data_root)
    me = local.json("whoami")
    assert me["principal"] == "user:admin"
    assert "admin" in me["credential_source"]


def test_a_credentials_file_others_can_read_is_refused(cli: Cli) -> None:
    bare = cli.without_credential()
    bare.ok("login", stdin=credential_for(new_user("open")))
    stored = Path(bare.env["XDG_CONFIG_HOME"]) / "modelreg" / "credentials"
    stored.chmod(0o644)
    assert f"chmod 600 {stored}" in bare.fails(8, "whoami")


def test_tokens_create_list_revoke_and_a_revoked_token_exits_8(cli: Cli) -> None:
    user, namespace = new_user("tokens"), unique("ns")
    owner = cli.as_principal(user, "editor", namespace)
    created = owner.run(
        "tokens", "create", "--description", "ci of fraud", "--ttl", "1d", "--namespace", namespace,
        "--max-role", "viewer",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    token_id = secret.split("_")[1]
    assert secret.startswith(f"mrt_{token_id}_")
    assert "shown only this once" in created.stderr
    assert secret not in created.stderr

    restricted = dataclasses.replace(owner, env={**owner.env, "MODELREG_TOKEN": secret})
    me = restricted.json("whoami")
    assert me["principal"] == user
    assert me["restriction"] == {"namespaces": [namespace], "max_role": "ROLE_VIEWER"}
    # Its owner is an editor there, but the token acts as a viewer at most.
    denied = restricted.fails(9, "models", "create", f"{namespace}/{unique('m')}")
    assert "models.create" in denied
    assert denied.endswith("[PERMISSION_DENIED IAM_PERMISSION_DENIED]")

    listed = owner.json("tokens", "list")
    mine = [t for t in listed if t["name"] == f"tokens/{token_id}"]
    assert [(t["principal"], t["description"]) for t in mine] == [(user, "ci of fraud")]
    row = next(line for line in owner.ok("tokens", "list").stdout.splitlines() if line.startswith(token_id))
    assert row.split()[1:3] == [user, "active"]
    assert f"only in {namespace}; at most viewer" in row

    revoked = owner.ok("tokens", "revoke", token_id)
    assert revoked.stdout == f"revoked token {token_id} of {user}\n"
    refused = restricted.fails(8, "whoami")
    assert "revoked" in refused
    assert "credential from MODELREG_TOKEN" in refused
    assert "modelreg login" in refused

    assert f"tokens/{token_id}" not in [t["name"] for t in owner.json("tokens", "list")]
    inactive = [t for t in owner.json("tokens", "list", "--all") if t["name"] == f"tokens/{token_id}"]
    assert len(inactive) == 1
    assert "revoke_time" in inactive[0]
    # Someone else's tokens are for global admins only.
    assert "tokens.list" in owner.fails(9, "tokens", "list", "--principal", "-")
    assert f"tokens/{token_id}" in [
        t["name"] for t in cli.json("tokens", "list", "--principal", user, "--all")
    ]
    assert "token id" in owner.fails(2, "tokens", "revoke", "not-an-id")


def test_namespaces_grant_revoke_and_bindings_decide_what_a_principal_may_do(cli: Cli) -> None:
    namespace, bob = unique("ns"), new_user("bob")
    as_bob = cli.as_principal(bob, role="")  # no role anywhere yet
    model = f"{namespace}/{unique('m')}"
    cli.ok("models", "create", model)
    assert "not found" in as_bob.fails(3, "models", "show", model)  # cannot read: as if absent

    granted = cli.ok("namespaces", "grant", namespace, bob, "viewer")
    assert granted.stdout == f"granted viewer in {namespace} to {bob}\n"
    assert as_bob.json("models", "show", model)["name"] == f"namespaces/{model.replace('/', '/models/')}"
    denied = as_bob.fails(9, "models", "create", f"{namespace}/{unique('m')}")
    assert "models.create" in denied
    assert denied.endswith("[PERMISSION_DENIED IAM_PERMISSION_DENIED]")
    as_bob.fails(9, "namespaces", "grant", namespace, bob, "admin")  # only admins grant

    bindings = cli.json("namespaces", "bindings", namespace)
    assert [(b["parent"], b["principal"], b["role"], b["create_actor"]) for b in bindings] == [
        (f"namespaces/{namespace}", bob, "ROLE_VIEWER", cli.principal)
    ]
    rows = cli.ok("namespaces", "bindings", namespace).stdout.splitlines()
    assert rows[0].split() == ["NAMESPACE", "PRINCIPAL", "ROLE", "GRANTED", "BY"]
    assert rows[1].split()[:3] == [namespace, bob, "viewer"]

    # `-`: every namespace.
    assert (
        cli.ok("namespaces", "grant", "-", bob, "editor").stdout
        == f"granted editor in every namespace to {bob}\n"
    )
    assert (bob, "ROLE_EDITOR") in [
        (b["principal"], b["role"]) for b in cli.json("namespaces", "bindings", "-")
    ]
    as_bob.ok("models", "create", f"{namespace}/{unique('m')}")
    cli.ok("namespaces", "revoke", "-", bob, "editor")
    as_bob.fails(9, "models", "create", f"{namespace}/{unique('m')}")

    revoked = cli.ok("namespaces", "revoke", namespace, bob, "viewer")
    assert revoked.stdout == f"revoked viewer in {namespace} from {bob}\n"
    assert cli.json("namespaces", "bindings", namespace) == []
    as_bob.fails(3, "models", "show", model)
    cli.fails(3, "namespaces", "revoke", namespace, bob, "viewer")  # no such binding any more

    assert "argument ROLE" in cli.fails(2, "namespaces", "grant", namespace, bob, "owner")
    assert "principal" in cli.fails(2, "namespaces", "grant", namespace, "bob", "viewer")
