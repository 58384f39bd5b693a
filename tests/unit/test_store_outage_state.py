"""`Outage` (one log line per state change, retry_after growing with the outage) and the
classification of driver errors at the store boundary."""

from __future__ import annotations

import logging
import sqlite3

import asyncpg
import pytest

from gateway.store import postgres, sqlite
from gateway.store.outage import Outage


def test_outage_logs_each_change_once_and_paces_retries(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = logging.getLogger("test.outage")
    outage = Outage("db", logger=log, clock=lambda: now[0])
    recovered: list[bool] = []
    outage.on_recover.append(lambda: recovered.append(True))
    outage.succeeded()  # nothing open: nothing logged
    waits = []
    for t in (0, 1, 4, 9, 30, 600):
        now[0] = 100.0 + t
        waits.append(outage.failed("unreachable", OSError("refused")).retry_after)
    assert waits == [1, 1, 2, 5, 10, 10]  # half the outage's age, 1 to 10 s
    outage.succeeded()
    outage.succeeded()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.outage"]
    assert len(lines) == 2 and "unavailable (unreachable)" in lines[0]
    assert "available again after 600.0s" in lines[1] and "6 operations refused" in lines[1]
    assert recovered == [True] and not outage.down
    assert outage.failed("full", OSError()).retry_after == 1  # a new outage starts over


def test_a_flapping_store_logs_a_pair_of_lines_per_quiet_period(caplog: pytest.LogCaptureFixture) -> None:
    """An overloaded database that times out some operations and serves others: one
    ERROR/WARNING pair per `quiet` seconds, the flaps in between counted in the next line."""
    now = [0.0]
    log = logging.getLogger("test.flap")
    outage = Outage("db", logger=log, clock=lambda: now[0], quiet=10.0)
    recovered = []
    outage.on_recover.append(lambda: recovered.append(now[0]))
    for i in range(100):  # a flap every 0.2 s for 20 s: 2 refusals, then a success
        now[0] = i * 0.2
        outage.failed("timeout", TimeoutError())
        outage.failed("timeout", TimeoutError())
        now[0] += 0.1
        outage.succeeded()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.flap"]
    assert len(lines) == 4, lines  # at 0 s and after 10 s: each an ERROR and its WARNING
    assert "unavailable (timeout)" in lines[0] and "available again after 0.1s" in lines[1]
    assert "since the last line: 50 short outages, 100 operations refused" in lines[2]
    assert outage.outages == 100 and len(recovered) == 100  # every recovery still runs the callbacks


def sqlite_error(name: str, message: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorname = name
    return exc


@pytest.mark.parametrize(("name", "reason"), [
    ("SQLITE_FULL", "full"), ("SQLITE_READONLY", "read_only"), ("SQLITE_READONLY_DBMOVED", "read_only"),
    ("SQLITE_IOERR_WRITE", "io_error"), ("SQLITE_IOERR", "io_error"), ("SQLITE_BUSY", "locked"),
    ("SQLITE_CANTOPEN", "io_error"), ("SQLITE_ERROR", None), ("SQLITE_CONSTRAINT_CHECK", None), ("", None),
])
def test_sqlite_errors_classified(name: str, reason: str | None) -> None:
    assert sqlite.unavailable_reason(sqlite_error(name, "x")) == reason


@pytest.mark.parametrize(("exc", "reason"), [
    (asyncpg.ReadOnlySQLTransactionError("ro"), "read_only"),
    (asyncpg.DiskFullError("full"), "full"),
    (asyncpg.TooManyConnectionsError("many"), "full"),
    (asyncpg.QueryCanceledError("statement timeout"), "timeout"),
    (asyncpg.AdminShutdownError("bye"), "unreachable"),
    (asyncpg.CannotConnectNowError("starting"), "unreachable"),
    (asyncpg.ConnectionDoesNotExistError("gone"), "unreachable"),
    (asyncpg.InterfaceError("connection is closed"), "unreachable"),
    (ConnectionRefusedError(111, "refused"), "unreachable"),
    (TimeoutError(), "timeout"),
    (asyncpg.UniqueViolationError("dup"), None),
    (asyncpg.DeadlockDetectedError("deadlock"), None),
    (asyncpg.UndefinedTableError("no table"), None),
    (ValueError("bug"), None),
])
def test_postgres_errors_classified(exc: BaseException, reason: str | None) -> None:
    assert postgres.unavailable_reason(exc) == reason
