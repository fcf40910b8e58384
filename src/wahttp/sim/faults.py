"""Fault injection on the simulated network, on command: break one connection, refuse new ones,
restart the whole server, or let a chaos monkey do all of that at random for a while.

Every fault keeps the semantics the real server gives it: a 440 (replaced) and a 5xx only end the
stream, a 401 is the phone unlinking the device (it is removed, as `DELETE /phones/{n}/devices/{id}`
does), a restart cuts every stream but keeps all state, so unacked stanzas are redelivered at the
next login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from wahttp.wa.binary import Node

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)

ConnectionFault = Literal["drop", "stall", "5xx", "515", "440", "401", "failure-5xx"]
ServerFault = Literal["refuse", "restart"]
FaultKind = Literal[ConnectionFault, ServerFault]
CONNECTION_FAULTS: tuple[str, ...] = get_args(ConnectionFault)
SERVER_FAULTS: tuple[str, ...] = get_args(ServerFault)
# 440 leaves a session stopped until someone restarts it, and 401 destroys the link: a caller
# who wants them in a chaos run lists them.
DEFAULT_CHAOS_KINDS: tuple[FaultKind, ...] = ("drop", "stall", "5xx", "515", "refuse", "restart")
LOG_KEPT = 200
# What a client (ours and Baileys) reports when the stream ends this way.
CLIENT_CODES = {"drop": 428, "515": 515, "440": 440, "401": 401}
DEFAULT_5XX = 503
DEFAULT_FAILURE = 500
CHAOS_5XX = (500, 503)
POLL = 0.05


class FaultError(Exception):
    """A fault that cannot be injected now; `status` is the admin API's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class FaultRecord:
    t: float  # unix time
    kind: str
    target: str | None  # a device JID for connection faults
    source: str  # "api" or "chaos"
    code: int | None  # the close code the client reports, when it is certain

    def json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "kind": self.kind,
            "target": self.target,
            "source": self.source,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    count: int
    interval: float  # mean seconds between faults; each gap is uniform in [0.5, 1.5] x interval
    kinds: tuple[str, ...] = DEFAULT_CHAOS_KINDS
    seed: int = 0
    targets: tuple[str, ...] | None = None  # device JIDs; None: any connected device
    stall_seconds: float = 10.0  # a stalled link is aborted by the server after this
    refuse_seconds: float = 2.0
    down_seconds: float = 1.0
    target_wait: float = 30.0  # how long a connection fault waits for a connected target


@dataclass
class ChaosRun:
    plan: ChaosPlan
    started_at: float
    injected: int = 0
    skipped: int = 0  # connection faults that found no target within target_wait
    finished_at: float | None = None
    stopped: bool = False  # ended by DELETE /faults/chaos
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "running": self.running,
            "count": plan.count,
            "interval": plan.interval,
            "kinds": list(plan.kinds),
            "seed": plan.seed,
            "targets": list(plan.targets) if plan.targets is not None else None,
            "stall_seconds": plan.stall_seconds,
            "refuse_seconds": plan.refuse_seconds,
            "down_seconds": plan.down_seconds,
            "injected": self.injected,
            "skipped": self.skipped,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stopped": self.stopped,
        }


class Faults:
    """The simulator's fault injector; one per SimServer."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.injected: Counter[str] = Counter()
        self.log: deque[FaultRecord] = deque(maxlen=LOG_KEPT)
        self.refused_connections = 0
        self.restarts = 0
        self.chaos: ChaosRun | None = None
        self._refuse_until = 0.0  # time.monotonic()
        self._restarting = False
        self._restart_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- bookkeeping ---------------------------------------------------------------------------
    def record(
        self, kind: str, target: str | None, source: str, code: int | None = None
    ) -> FaultRecord:
        entry = FaultRecord(time.time(), kind, target, source, code)
        self.injected[kind] += 1
        self.log.append(entry)
        log.info("fault %s on %s (%s)", kind, target or "the server", source)
        return entry

    def status(self) -> dict[str, Any]:
        return {
            "injected": dict(self.injected),
            "running": self.chaos is not None and self.chaos.running,
            "log": [r.json() for r in self.log],
            "chaos": self.chaos.json() if self.chaos is not None else None,
            "refusing": self.refusing,
            "refuse_remaining": round(self.refuse_remaining, 3),
            "refused_connections": self.refused_connections,
            "listening": self.server.listening,
            "restarting": self._restarting,
            "restarts": self.restarts,
        }

    async def reset(self) -> None:
        """Stop the chaos run, end a refusal, forget counters and log (a restart under way and
        stalled links are left to end by themselves)."""
        await self.stop_chaos()
        self.end_refuse()
        self.injected.clear()
        self.log.clear()
        self.refused_connections = 0
        self.restarts = 0
        self.chaos = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fault task %s failed", task.get_name(), exc_info=task.exception())

    async def shutdown(self) -> None:
        """Cancel everything under way (the simulator is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- one connection ------------------------------------------------------------------------
    async def fail(
        self,
        jid: str,
        kind: str,
        *,
        code: int | None = None,
        seconds: float | None = None,
        source: str = "api",
    ) -> FaultRecord:
        """Break the stream of the device `jid` the way `kind` says (see the module doc)."""
        conn = self.server.connection(jid)
        if conn is None:
            raise FaultError(404, f"{jid} is not connected")
        if kind not in CONNECTION_FAULTS:
            raise FaultError(400, f"{kind} is not a connection fault")
        entry = self.record(kind, jid, source, _client_code(kind, code))
        await self._apply(conn, kind, entry.code, seconds)
        return entry

    async def _apply(
        self, conn: ServerConnection, kind: str, code: int | None, seconds: float | None
    ) -> None:
        if kind == "drop":
            conn.abort()
        elif kind == "stall":
            conn.stall(seconds)
        elif kind == "5xx":
            await conn.stream_error(code or DEFAULT_5XX)
        elif kind == "515":
            await conn.stream_error(515)
        elif kind == "440":
            # Another connection took over: nothing is removed, the client just stops.
            await conn.stream_error(None, Node("conflict", {"type": "replaced"}))
        elif kind == "401":
            # A real 401 means the device is logged out: the phone unlinked it.
            device = conn.device
            if device is not None:
                await self.server.unlink(device.number, device.device_id)
        elif kind == "failure-5xx":
            failure = {"reason": str(code or DEFAULT_FAILURE), "location": "sim"}
            await conn.send_node(Node("failure", failure))
            await conn.close()

    # -- refusing new connections --------------------------------------------------------------
    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    @property
    def refuse_remaining(self) -> float:
        return max(0.0, self._refuse_until - time.monotonic())

    def refuse(self, seconds: float, source: str = "api") -> float:
        """Answer every WebSocket upgrade with HTTP 503 for `seconds` (replacing an earlier
        deadline); returns the unix time it ends."""
        self._refuse_until = time.monotonic() + seconds
        self.record("refuse", None, source)
        return time.time() + seconds

    def end_refuse(self) -> bool:
        was = self.refusing
        self._refuse_until = 0.0
        return was

    # -- restarting the server -----------------------------------------------------------------
    @property
    def restarting(self) -> bool:
        return self._restarting

    async def restart(self, down_seconds: float, source: str = "api") -> int:
        """Cut every stream and stop listening; listen again on the same port after
        `down_seconds`. Returns how many streams were cut."""
        if self._restarting or not self.server.listening:
            raise FaultError(409, "the server is down already")
        self._restarting = True
        self.restarts += 1
        self.record("restart", None, source)
        cut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # One task for the whole cycle, so a cancelled caller never leaves the server down.
        self._restart_task = self._spawn(self._cycle(down_seconds, cut), "sim-restart")
        return await asyncio.shield(cut)

    async def _cycle(self, down_seconds: float, cut: asyncio.Future[int]) -> None:
        try:
            try:
                cut.set_result(await self.server.go_down())
            except asyncio.CancelledError:
                cut.cancel()
                raise
            except Exception as exc:
                cut.set_exception(exc)
                raise
            await asyncio.sleep(down_seconds)
            await self.server.come_up()
            log.info("simulator back up on %s", self.server.url)
        finally:
            self._restarting = False

    async def wait_settled(self) -> None:
        """Until the server listens and accepts connections again."""
        while self._restarting or self.refusing:
            await asyncio.sleep(POLL)

    # -- chaos ---------------------------------------------------------------------------------
    def start_chaos(self, plan: ChaosPlan) -> ChaosRun:
        if self.chaos is not None and self.chaos.running:
            raise FaultError(409, "a chaos run is under way (DELETE /faults/chaos stops it)")
        run = ChaosRun(plan, time.time())
        run.task = self._spawn(self._chaos(run), "sim-chaos")
        self.chaos = run
        return run

    async def stop_chaos(self) -> bool:
        run = self.chaos
        if run is None or run.task is None or not run.running:
            return False
        run.stopped = True
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task
        return True

    async def _chaos(self, run: ChaosRun) -> None:
        plan = run.plan
        picks = random.Random(f"picks:{plan.seed}")  # targets and 5xx codes
        try:
            for gap, kind in chaos_schedule(plan):
                await asyncio.sleep(gap)
                if await self._chaos_one(plan, kind, picks):
                    run.injected += 1
                else:
                    run.skipped += 1
            # The run ends once the network is healthy again: listening and accepting.
            await self.wait_settled()
        finally:
            run.finished_at = time.time()

    async def _chaos_one(self, plan: ChaosPlan, kind: str, picks: random.Random) -> bool:
        deadline = time.monotonic() + plan.target_wait
        while True:
            if kind == "refuse":
                self.refuse(plan.refuse_seconds, "chaos")
                return True
            if kind == "restart":
                if not self._restarting and self.server.listening:
                    await self.restart(plan.down_seconds, "chaos")
                    return True
            else:
                targets = self._chaos_targets(plan)
                if targets:
                    jid = picks.choice(targets)
                    conn = self.server.connection(jid)
                    assert conn is not None
                    code = picks.choice(CHAOS_5XX) if kind in ("5xx", "failure-5xx") else None
                    entry = self.record(kind, jid, "chaos", _client_code(kind, code))
                    # In the background: a close handshake must not hold up the schedule.
                    coro = self._apply(conn, kind, entry.code, plan.stall_seconds)
                    self._spawn(coro, f"sim-fault-{kind}")
                    return True
            if time.monotonic() >= deadline:
                log.warning("chaos: no target for %s within %.1fs, skipped", kind, plan.target_wait)
                return False
            await asyncio.sleep(POLL)

    def _chaos_targets(self, plan: ChaosPlan) -> list[str]:
        """Connected devices that are not stalled already (sorted: a seed replays a run)."""
        wanted = set(plan.targets) if plan.targets is not None else None
        return sorted(
            jid
            for jid, conn in self.server.network.connections.items()
            if not conn.stalled and not conn.closed.is_set() and (wanted is None or jid in wanted)
        )


def chaos_schedule(plan: ChaosPlan) -> Iterator[tuple[float, str]]:
    """(gap in seconds, kind) of each fault: the seed alone fixes this sequence (which device a
    fault hits depends on who is connected at the time)."""
    rng = random.Random(plan.seed)
    for _ in range(plan.count):
        yield rng.uniform(0.5, 1.5) * plan.interval, rng.choice(plan.kinds)


def new_seed() -> int:
    return secrets.randbelow(2**31)


def _client_code(kind: str, code: int | None) -> int | None:
    if kind == "5xx":
        return code or DEFAULT_5XX
    if kind == "failure-5xx":
        return code or DEFAULT_FAILURE
    return CLIENT_CODES.get(kind)
