"""Shared pieces of the service benchmarks (sessions, send, receive).

Each benchmark runs `wahttp sim` and `wahttp serve` as separate processes (so the simulator's
CPU is never counted as wahttp's), on a fresh PostgreSQL database that is dropped afterwards,
links sessions through the real pairing-code flow (REST API + the simulator's admin API), and
samples CPU and memory of each process with psutil. Results go to bench/results/<name>.json
with the machine and the versions, next to each target and whether it was met.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from wahttp import __version__

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
INTEROP = ROOT / "tests" / "interop"
PG_DSN = os.environ.get("WAHTTP_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench-admin-key-" + "k" * 24
HOOK_SECRET = "bench-webhook-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- measuring -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Usage:
    """A process's CPU seconds (user + system, children excluded) and memory at one moment."""

    at: float
    cpu: float
    rss: int
    uss: int

    @classmethod
    def of(cls, proc: psutil.Process) -> Usage:
        times = proc.cpu_times()
        mem = proc.memory_full_info()
        return cls(time.monotonic(), times.user + times.system, mem.rss, mem.uss)

    def cpu_share(self, earlier: Usage) -> float:
        """CPU seconds per wall second between the two samples (1.0 = one core busy)."""
        return (self.cpu - earlier.cpu) / max(self.at - earlier.at, 1e-9)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50/p99/mean/max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
    }


def mib(n: float) -> float:
    return round(n / (1024 * 1024), 2)


def target(
    name: str, goal: str, measured: Any, met: bool, gap: str | None = None
) -> dict[str, Any]:
    """One target next to its measured value; an unmet one says why and what comes next."""
    row: dict[str, Any] = {"target": name, "goal": goal, "measured": measured, "met": met}
    if not met:
        row["gap"] = gap or "not explained"
    return row


# -- machine and versions -------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


async def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    from importlib.metadata import version

    found = {"wahttp": __version__, "python": platform.python_version()}
    for package in ("websockets", "asyncpg", "fastapi", "uvicorn", "cryptography", "httpx"):
        found[package] = version(package)
    conn = await asyncpg.connect(PG_DSN)
    try:
        found["postgresql"] = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    return {**found, **(extra or {})}


def node_versions() -> dict[str, str]:
    package = json.loads((INTEROP / "node_modules" / "baileys" / "package.json").read_text())
    node = os.popen("node --version").read().strip()
    return {"node": node, "baileys": str(package["version"])}


def write_result(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def print_targets(rows: Iterable[dict[str, Any]]) -> None:
    print(f"{'target':38} {'goal':24} {'measured':>18}  met")
    for row in rows:
        measured = row["measured"]
        shown = f"{measured:.4g}" if isinstance(measured, float) else str(measured)
        print(f"{row['target']:38} {row['goal']:24} {shown:>18}  {row['met']}")
        if not row["met"]:
            print(f"    gap: {row['gap']}")


# -- the database ---------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new database on the machine's PostgreSQL for one run, dropped afterwards."""
    name = f"wahttp_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        base = PG_DSN.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


# -- the simulator process -----------------------------------------------------------------------
@dataclass
class Sim:
    proc: asyncio.subprocess.Process
    ws_url: str
    root_key: str
    admin_url: str
    ps: psutil.Process
    admin: httpx.AsyncClient

    @classmethod
    async def start(cls) -> Sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wahttp.cli",
            "--log-level",
            "WARNING",
            "sim",
            "--json",
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        admin = httpx.AsyncClient(
            base_url=info["admin_url"], timeout=120, limits=httpx.Limits(max_connections=64)
        )
        return cls(
            proc,
            info["ws_url"],
            info["root_key"],
            info["admin_url"],
            psutil.Process(proc.pid),
            admin,
        )

    async def stop(self) -> None:
        await self.admin.aclose()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def new_phones(self, count: int) -> list[str]:
        """`count` new phones (accounts), made in one admin call."""
        resp = await self.admin.post("/phones/bulk", json={"count": count})
        resp.raise_for_status()
        return [p["number"] for p in resp.json()]

    async def enter_code(self, number: str, code: str) -> None:
        resp = await self.admin.post(f"/phones/{number}/pairing-code", json={"code": code})
        if resp.status_code != 200:
            raise RuntimeError(f"pairing code refused for {number}: {resp.text}")


# -- the service process -------------------------------------------------------------------------
@dataclass
class Serve:
    """`wahttp serve` as a process we can stop and start again on the same database."""

    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    ps: psutil.Process | None = None
    api: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.env['PORT']}",
            timeout=120,
            headers={"X-Api-Key": API_KEY},
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )

    @classmethod
    def configure(cls, sim: Sim, database_url: str, workdir: Path, **extra: str) -> Serve:
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            HOST="127.0.0.1",
            PORT=str(free_port()),
            DATABASE_URL=database_url,
            WAHTTP_API_KEY=API_KEY,
            WAHTTP_DATA_DIR=str(workdir / "data"),
            WAHTTP_AUTH_DIR=str(workdir / "auth_sessions"),
            WAHTTP_WA_URL=sim.ws_url,
            WAHTTP_WA_ROOT_KEY=sim.root_key,
            WAHTTP_SEND_RATE="0",  # the benchmark measures throughput, not the human pace
            WAHTTP_SHUTDOWN_TIMEOUT="30",
        )
        env.update(extra)
        return cls(env, workdir / "serve.log")

    def settings(self) -> dict[str, str]:
        """The WAHTTP_* settings of this run (secrets left out), for the report."""
        hidden = {"WAHTTP_API_KEY", "WAHTTP_WEBHOOK_SECRET", "WAHTTP_WA_ROOT_KEY"}
        return {
            k: v for k, v in sorted(self.env.items()) if k.startswith("WAHTTP_") and k not in hidden
        }

    async def start(self, timeout: float = 120) -> float:
        """Start the process; returns the seconds until /health answered 200."""
        started = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wahttp.cli",
            "serve",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log_path.open("ab"),
        )
        self.ps = psutil.Process(self.proc.pid)
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"wahttp serve exited with {self.proc.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if (await self.api.get("/health")).status_code == 200:
                        return time.monotonic() - started
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 60) -> float:
        """SIGTERM (graceful: every socket closed); returns the seconds it took to exit."""
        started = time.monotonic()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return time.monotonic() - started

    async def close(self) -> None:
        await self.stop()
        await self.api.aclose()

    def usage(self) -> Usage:
        assert self.ps is not None
        return Usage.of(self.ps)

    async def health(self) -> dict[str, Any]:
        resp = await self.api.get("/health")
        data: dict[str, Any] = resp.json()
        return data

    async def wait_open(
        self, count: int, timeout: float, on_tick: Callable[[dict[str, Any]], None] | None = None
    ) -> float:
        """Poll /health until `count` sessions are open; returns when that was (monotonic)."""
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    sessions = (await self.health())["sessions"]
                    if on_tick is not None:
                        on_tick(sessions)
                    if sessions.get("open", 0) >= count:
                        return time.monotonic()
                await asyncio.sleep(0.1)

    async def status(self, session_id: str) -> dict[str, Any]:
        resp = await self.api.get(f"/sessions/{session_id}/status")
        data: dict[str, Any] = resp.json()
        return data

    @contextlib.asynccontextmanager
    async def closing(self) -> AsyncIterator[Serve]:
        """Close the process afterwards; when the body fails, show the tail of its log first."""
        try:
            yield self
        except BaseException:
            log(f"serve log tail:\n{self.log_tail()}")
            raise
        finally:
            await self.close()

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


async def pair_session(serve: Serve, sim: Sim, session_id: str, number: str) -> None:
    """Create a session and link it to the phone `number` by pairing code, as a user would:
    POST /sessions, POST pair-request, then the phone's user types the code."""
    resp = await serve.api.post("/sessions", json={"id": session_id})
    if resp.status_code != 201:
        raise RuntimeError(f"POST /sessions {session_id}: {resp.status_code} {resp.text}")
    resp = await serve.api.post(
        f"/sessions/{session_id}/pair-request", json={"number": f"+{number}"}
    )
    if resp.status_code != 200:
        raise RuntimeError(f"pair-request {session_id}: {resp.status_code} {resp.text}")
    await sim.enter_code(number, resp.json()["pairingCode"])


async def link_sessions(
    serve: Serve, sim: Sim, ids: list[str], *, concurrency: int = 16, timeout: float = 1800
) -> dict[str, str]:
    """Link every id to a new phone (pairing code) and wait until all are open.

    Returns session id -> phone number. Linking runs `concurrency` pairings at a time; the
    sessions then log in again (515) and upload their pre-keys on their own.
    """
    if not ids:
        return {}
    numbers = await sim.new_phones(len(ids))
    linked = dict(zip(ids, numbers, strict=True))
    gate = asyncio.Semaphore(concurrency)
    done = 0
    started = time.monotonic()

    async def one(session_id: str, number: str) -> None:
        nonlocal done
        async with gate:
            for attempt in range(3):
                try:
                    await pair_session(serve, sim, session_id, number)
                    break
                except (RuntimeError, httpx.TransportError) as exc:
                    if attempt == 2:
                        raise
                    log(f"retrying the pairing of {session_id}: {exc}")
                    await serve.api.delete(f"/sessions/{session_id}")
            done += 1
            if done % 100 == 0:
                log(f"paired {done}/{len(ids)} in {time.monotonic() - started:.0f}s")

    await gather_all(one(s, n) for s, n in linked.items())
    await serve.wait_open(len(ids), timeout)
    return linked


async def gather_all(coros: Iterable[Awaitable[Any]]) -> list[Any]:
    """gather that cancels the rest when one fails."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def settle(
    usage: Callable[[], Usage], *, share: float = 0.05, window: float = 1.0, timeout: float = 900
) -> float:
    """Wait until a process (`usage` samples it) uses under `share` of a core for `window`
    seconds: its background work is done (the folder mirror writing the pre-keys of sessions
    just linked: 812 files each). Returns the seconds waited."""
    started = time.monotonic()
    last = usage()
    while time.monotonic() - started < timeout:
        await asyncio.sleep(window)
        now = usage()
        if now.cpu_share(last) < share:
            break
        last = now
    return round(time.monotonic() - started, 1)


async def wait_quiet(max_load: float = 1.2, timeout: float = 900) -> float:
    """Wait (up to `timeout`) until the 1-minute load average is below `max_load`."""
    deadline = time.monotonic() + timeout
    while True:
        load = os.getloadavg()[0]
        if load < max_load or time.monotonic() > deadline:
            return load
        log(f"machine busy (load {load:.2f}), waiting")
        await asyncio.sleep(15)


# -- a webhook receiver --------------------------------------------------------------------------
@dataclass
class Hook:
    event_id: str
    type: str
    data: dict[str, Any]
    at: float  # time.time() when the request was read


class HookReceiver:
    """A small HTTP/1.1 server (keep-alive) that answers 200 at once and records each event."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def of(self, kind: str) -> list[Hook]:
        return [h for h in self.hooks if h.type == kind]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                event = json.loads(body)
                self.hooks.append(
                    Hook(event["id"], event["type"], event.get("data") or {}, time.time())
                )
                self.changed.set()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


# -- driving sends through the REST API ----------------------------------------------------------
@dataclass
class SendRun:
    """What a closed-loop send workload measured at the HTTP client."""

    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "messages": self.sent,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "messages_per_s": round(self.per_second, 1),
            **latency_summary(self.latencies),
            "errors": self.errors,
        }


class RawHttp:
    """One keep-alive HTTP/1.1 connection that POSTs JSON: the benchmark's load generator.

    httpx with hundreds of pooled connections spends more CPU per request than the server it
    measures (10 ms at 200 in flight on this machine), which made the driver the bottleneck;
    this costs a fraction of a millisecond. Bodies must come with a Content-Length."""

    def __init__(self, port: int, api_key: str, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._head = f"Host: {host}:{port}\r\nX-Api-Key: {api_key}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(request.encode() + body)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            data = await self._reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            await self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def drive_sends(
    serve: Serve,
    routes: list[tuple[str, str]],
    per_route: int,
    concurrency: int,
    text: str = "bench message",
) -> SendRun:
    """Each (session id, number) route sends `per_route` texts with `concurrency` requests in
    flight at once (a closed loop, one connection per worker); latency is POST /send-message
    until its answer."""
    run = SendRun()
    port = int(serve.env["PORT"])

    async def worker(session_id: str, to: str, quota: list[int]) -> None:
        http = RawHttp(port, API_KEY)
        path = f"/sessions/{session_id}/send-message"
        try:
            while quota[0] > 0:
                quota[0] -= 1
                body = json.dumps({"to": f"+{to}", "message": f"{text} {quota[0]}"}).encode()
                started = time.perf_counter()
                try:
                    status, _ = await http.post(path, body)
                    ok, reason = status == 200, str(status)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    ok, reason = False, type(exc).__name__
                if ok:
                    run.latencies.append(time.perf_counter() - started)
                    run.sent += 1
                else:
                    run.failed += 1
                    run.errors[reason] = run.errors.get(reason, 0) + 1
        finally:
            await http.close()

    started = time.perf_counter()
    jobs = []
    for session_id, to in routes:
        quota = [per_route]
        jobs += [worker(session_id, to, quota) for _ in range(concurrency)]
    await gather_all(jobs)
    run.seconds = time.perf_counter() - started
    return run


@contextlib.asynccontextmanager
async def profiled(pid: int, name: str) -> AsyncIterator[None]:
    """With WAHTTP_BENCH_PYSPY=<folder>, sample `pid` with py-spy (a dev extra) while the
    block runs and write <folder>/<name>.txt (collapsed stacks); otherwise do nothing."""
    folder = os.environ.get("WAHTTP_BENCH_PYSPY")
    if not folder:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    out = Path(folder) / f"{name}.txt"
    # The dev extras install py-spy beside this interpreter; the venv need not be on PATH.
    beside = Path(sys.executable).with_name("py-spy")
    proc = await asyncio.create_subprocess_exec(
        str(beside) if beside.exists() else "py-spy",
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(out),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()
        log(f"profile written to {out}")
