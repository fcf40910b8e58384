"""Per-stage timing of POST /send-message inside `wahttp serve`, for the send benchmark.

Loaded by Python at start-up when this folder is on PYTHONPATH (`sitecustomize`); it does
nothing unless WAHTTP_BENCH_STAGES names a JSON file to write and the process is `wahttp
serve`. It wraps the stages of a send (no product code changes) and, at exit, writes per
stage the mean and percentiles of its duration, and the mean stage breakdown of the slowest
1 % of sends next to that of the median ones: what makes the tail slow.

    WAHTTP_BENCH_STAGES=/tmp/stages.json PYTHONPATH=bench/stages \\
        .venv/bin/python bench/send.py --scenarios 50:20 --no-baileys --no-mirror-variant
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

_OUT = os.environ.get("WAHTTP_BENCH_STAGES")
_trace: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "wahttp_bench_stage_trace", default=None
)
_stage: contextvars.ContextVar[str] = contextvars.ContextVar("wahttp_bench_stage", default="-")
_done: list[dict[str, float]] = []


def _is_serve() -> bool:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"wahttp.cli" in argv and b"serve" in argv


def _add(name: str, seconds: float) -> None:
    trace = _trace.get()
    if trace is not None:
        trace[name] = trace.get(name, 0.0) + seconds


def _timed(owner: Any, attr: str, stage: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _stage.set(stage)
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            _add(stage, time.perf_counter() - started)
            _stage.reset(token)

    setattr(owner, attr, wrapper)


def _traced_root(owner: Any, attr: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        trace: dict[str, float] = {}
        token = _trace.set(trace)
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            trace["total"] = time.perf_counter() - started
            _trace.reset(token)
            _done.append(trace)

    setattr(owner, attr, wrapper)


def _timed_acquire(owner: Any) -> None:
    original: Callable[..., Any] = owner.acquire

    @contextlib.asynccontextmanager
    async def acquire(self: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        async with original(self) as conn:
            _add(f"pool_wait:{_stage.get()}", time.perf_counter() - started)
            yield conn

    owner.acquire = acquire


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report() -> None:
    if not _done or _OUT is None:
        return
    stages = sorted({k for t in _done for k in t})
    by_total = sorted(_done, key=lambda t: t["total"])
    n = len(by_total)
    tail = by_total[int(0.99 * n) :]
    middle = by_total[int(0.45 * n) : int(0.55 * n) + 1]

    def mean_ms(traces: list[dict[str, float]], stage: str) -> float:
        return round(1000 * sum(t.get(stage, 0.0) for t in traces) / len(traces), 2)

    report = {
        "sends": n,
        "stages_ms": {
            s: {
                "mean": mean_ms(_done, s),
                "p50": round(1000 * _percentile([t.get(s, 0.0) for t in _done], 0.5), 2),
                "p99": round(1000 * _percentile([t.get(s, 0.0) for t in _done], 0.99), 2),
                "median_sends_mean": mean_ms(middle, s),
                "slowest_1pct_mean": mean_ms(tail, s),
            }
            for s in stages
        },
    }
    with open(_OUT, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


def _install() -> None:
    from wahttp.server import events, sessions
    from wahttp.server.db import Database
    from wahttp.server.store import PostgresAuthStore
    from wahttp.wa.client import client, e2e, send, usync

    _traced_root(sessions.ManagedSession, "send_text")
    _timed(events.ServiceEvents, "before_send", "before_send")
    _timed(events.ServiceEvents, "after_send", "after_send")
    _timed(usync, "fetch_devices", "usync")
    _timed(e2e, "addresses", "addresses")
    _timed(send, "_encrypt_for_devices", "encrypt_stage")
    _timed(e2e, "load_sessions", "load_sessions")
    _timed(PostgresAuthStore, "set", "store_set")
    _timed(client.Client, "remember_sent", "remember_sent")
    _timed(client.Client, "send_and_wait_ack", "ack")
    _timed_acquire(Database)
    atexit.register(_report)


if _OUT and _is_serve():
    _install()
