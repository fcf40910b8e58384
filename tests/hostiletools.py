"""Hostile input helpers: every bad input must be a 4xx JSON error and log no traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import httpx
import pytest

# Loggers that do not propagate to the root logger, where caplog listens.
_SILO_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@contextlib.contextmanager
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail if anything logs a traceback (or an exception) meanwhile, uvicorn's loggers too."""
    caplog.set_level(logging.INFO)
    silos = [logging.getLogger(name) for name in _SILO_LOGGERS]
    for logger in silos:
        logger.addHandler(caplog.handler)
    start = len(caplog.records)
    try:
        yield
    finally:
        for logger in silos:
            logger.removeHandler(caplog.handler)
    records = caplog.records[start:]
    bad = [r for r in records if r.exc_info or "Traceback" in r.getMessage()]
    text = "\n".join(caplog.handler.format(r) for r in bad)
    assert not bad, f"a client's mistake logged a traceback:\n{text}"


def assert_client_error(resp: httpx.Response, status: int | None = None) -> dict[str, object]:
    """A 4xx (or exactly `status`) in the service's error shape; returns its error object."""
    assert 400 <= resp.status_code < 500, f"{resp.request.url}: {resp.status_code} {resp.text}"
    if status is not None:
        assert resp.status_code == status, f"{resp.request.url}: {resp.status_code} {resp.text}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    error: dict[str, object] = body["error"]
    return error
