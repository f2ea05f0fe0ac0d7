"""What counts as a store outage, how health follows the stores, and how `make run` revives its
children, without servers (the real thing: tests/integration/test_store_outages.py and
tests/integration/test_local_supervision.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from modelreg_common.config import ConfigError, EnvReader, MongoTimeouts
from modelreg_common.outages import outage_message, store_outage
from modelreg_common.store_health import StoreHealth, StoreProbe
from modelreg_local.supervisor import Child, GaveUp, Supervisor
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("/run/x/mongodb.sock: [Errno 111] Connection refused"),
        AutoReconnect("connection closed"),
        NetworkTimeout("timed out"),
        WaitQueueTimeoutError("pool exhausted"),
        ConnectionFailure("gone"),
        ExecutionTimeout("operation exceeded time limit", code=50),
    ],
    ids=type,
)
def test_connection_class_errors_are_outages(error: Exception) -> None:
    assert store_outage(error) is error
    assert "sock" not in outage_message(store_outage(error))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [OperationFailure("unknown operator: $foo", code=2), DuplicateKeyError("E11000"), ValueError("bug")],
    ids=type,
)
def test_other_errors_are_not(error: Exception) -> None:
    assert store_outage(error) is None


def test_an_outage_behind_another_error_or_in_a_group_is_found() -> None:
    cause = AutoReconnect("connection closed")
    wrapped = RuntimeError("the store's own wrapping")
    wrapped.__cause__ = cause
    assert store_outage(wrapped) is cause
    assert store_outage(ExceptionGroup("parts", [ValueError("x"), cause])) is cause


def test_timeouts_are_read_once_and_checked() -> None:
    read = EnvReader({"MODELREG_MONGODB_TIMEOUT_MS": "1500"})
    timeouts = MongoTimeouts.read(read)
    read.finish()
    assert timeouts.client_options()["serverSelectionTimeoutMS"] == 1500
    assert timeouts.client_options()["connectTimeoutMS"] == 1500
    assert timeouts.probe_seconds == 1.0
    read = EnvReader({"MODELREG_MONGODB_TIMEOUT_MS": "soon", "MODELREG_MONGODB_OPERATION_TIMEOUT_MS": "5"})
    MongoTimeouts.read(read)
    with pytest.raises(ConfigError) as refused:
        read.finish()
    assert any("MODELREG_MONGODB_TIMEOUT_MS" in problem for problem in refused.value.problems)
    assert any("MODELREG_MONGODB_OPERATION_TIMEOUT_MS" in problem for problem in refused.value.problems)


class FakeStore:
    def __init__(self) -> None:
        self.up = True

    async def check(self) -> None:
        if not self.up:
            raise ConnectionFailure("down")


async def _monitored() -> tuple[FakeStore, StoreHealth, health_aio.HealthServicer]:
    store = FakeStore()
    health = StoreHealth([StoreProbe("database", store.check)])
    servicer = health_aio.HealthServicer()
    for name in ("", "svc"):
        await servicer.set(name, SERVING)
    health.start(servicer, ["", "svc"])
    await health.stop()  # the test drives the probes itself
    return store, health, servicer


def _statuses(servicer: health_aio.HealthServicer) -> set[int]:
    return {servicer._server_status[name] for name in ("", "svc")}


async def test_health_turns_after_two_failed_probes_and_back_after_one_success() -> None:
    store, health, servicer = await _monitored()
    store.up = False
    await health.probe_once()
    assert _statuses(servicer) == {SERVING}  # one slow or failed ping is not an outage
    await health.probe_once()
    assert _statuses(servicer) == {NOT_SERVING}
    store.up = True
    await health.probe_once()
    assert _statuses(servicer) == {SERVING}


async def test_a_call_that_met_an_outage_counts_as_a_failed_probe() -> None:
    store, health, servicer = await _monitored()
    store.up = False
    health.outage_seen()
    await health.probe_once()
    assert _statuses(servicer) == {NOT_SERVING}


async def test_graceful_shutdown_wins_over_the_probe() -> None:
    store, health, servicer = await _monitored()
    store.up = False
    await health.probe_once()
    await health.probe_once()
    await servicer.enter_graceful_shutdown()
    store.up = True
    await health.probe_once()
    assert _statuses(servicer) == {NOT_SERVING}


class FakeChild:
    def __init__(self, fails_to_restart: int = 0):
        self.code: int | None = None
        self.fails_to_restart = fails_to_restart
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1
        if self.fails_to_restart:
            self.fails_to_restart -= 1
            raise RuntimeError("port taken")
        self.code = None

    def child(self) -> Child:
        return Child(
            "FerretDB", lambda: 42, lambda: self.code, self.restart, Path("/data/ferretdb/server.log")
        )


def _supervisor(child: FakeChild, lines: list[str], max_restarts: int = 5) -> Supervisor:
    report: Callable[[str], None] = lines.append
    return Supervisor(
        [child.child()], report=report, stop=threading.Event(), first_backoff=0, max_restarts=max_restarts
    )


def test_a_dead_child_is_named_and_restarted() -> None:
    child, lines = FakeChild(fails_to_restart=1), list[str]()
    supervisor = _supervisor(child, lines)
    child.code = -9
    supervisor.check()
    assert child.restarts == 2
    assert lines[0] == "modelreg-local: FerretDB (pid 42) died: killed by SIGKILL"
    assert "FerretDB did not come back: port taken" in lines[2]
    assert lines[-1] == "modelreg-local: FerretDB is running again (pid 42)"


def test_a_child_that_keeps_dying_stops_the_stack() -> None:
    child, lines = FakeChild(), list[str]()
    supervisor = _supervisor(child, lines, max_restarts=2)
    for _ in range(2):
        child.code = 1
        supervisor.check()
    child.code = 1
    with pytest.raises(
        GaveUp, match=r"FerretDB died 3 times .* giving up \(its log: /data/ferretdb/server.log\)"
    ):
        supervisor.check()


def test_a_child_that_cannot_be_restarted_stops_the_stack() -> None:
    child, lines = FakeChild(fails_to_restart=99), list[str]()
    supervisor = _supervisor(child, lines, max_restarts=3)
    child.code = 2
    with pytest.raises(GaveUp, match="could not be restarted after 3 attempts"):
        supervisor.check()
    assert "exit code 2" in lines[0]
