"""Which failures count as "the database is not there" (server/db.py is_unavailable): those are
logged in one line and answered 503; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import asyncpg
import pytest

from wahttp.server.db import DatabaseUnavailable, is_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        DatabaseUnavailable("down"),
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        # A connection PostgreSQL ended mid-operation (seen in the 3-worker restart test).
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
    ],
)
def test_outage_failures_are_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("bug"), asyncpg.UniqueViolationError("dup"), KeyError("x")]
)
def test_other_failures_are_not(exc: BaseException) -> None:
    assert not is_unavailable(exc)
