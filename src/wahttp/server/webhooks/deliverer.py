"""The deliverer: claims due outbox rows, POSTs each signed event, records the outcome.

At most `concurrency` deliveries run at once, at most `target_concurrency` for one URL
(targets.claim_room). Each attempt is signed afresh (signing.py); what its answer means is
outcome.decide's, a pure function. A refused address is dead at once without any connection
attempt (the guarded clients of server/outbound.py check every connection); redirects are
never followed. A row that cannot be opened (its sealing key is gone) is dead with the reason.
Order is not guaranteed: receivers use `timestamp`.

Logs name the delivery id, event id, type, status code and attempt; never bodies, secrets or
URLs (a URL may carry a token). httpx itself logs each request line, URL included, at INFO on
the `httpx` logger: keep that logger at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping

import httpx

from wahttp import __version__
from wahttp.server.outbound import AddressNotAllowed, OutboundGuard, guarded_client
from wahttp.server.webhooks.contract import (
    HEADER_ATTEMPT,
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_EVENT_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    encode_body,
)
from wahttp.server.webhooks.listener import Listener
from wahttp.server.webhooks.outbox import Job, OutboxRepository, seal_context
from wahttp.server.webhooks.outcome import (
    Outcome,
    Verdict,
    backoff_delay,
    dead,
    decide,
    error_text,
    retry_after,
)
from wahttp.server.webhooks.signing import sign
from wahttp.server.webhooks.targets import claim_room
from wahttp.wa.auth.sealing import Sealer, SealError, is_sealed, open_sealed

log = logging.getLogger(__name__)

HttpClientFactory = Callable[[], httpx.AsyncClient]
DEFAULT_CONCURRENCY = 64
DEFAULT_TARGET_CONCURRENCY = 8  # as many as all deliveries had before: no URL is slower
_RECORD_TRIES = 3
# Delivered is routine, a retry worth noting, a dead letter a problem.
_LOG_LEVELS = {
    Verdict.DELIVERED: logging.DEBUG,
    Verdict.RETRY: logging.INFO,
    Verdict.DEAD: logging.WARNING,
}


class Deliverer:
    """Drains the outbox in the background: `start()`, `stop()`, `wake()`.

    `lease` is how long a claim lasts before another worker may take the row over;
    `poll_interval` bounds how long it sleeps without a wake-up; `jitter` spreads each backoff
    delay uniformly over [1 - jitter, 1 + jitter] times its nominal value. `guards` says where
    each kind of target may connect; `http_client_factory` replaces the guarded clients with
    one of the caller's, which then checks nothing.
    """

    def __init__(
        self,
        outbox: OutboxRepository,
        listener: Listener | None,
        guards: Mapping[str, OutboundGuard],
        *,
        max_attempts: int,
        base_delay: float,
        max_delay: float,
        timeout: float,
        concurrency: int,
        target_concurrency: int,
        lease: float,
        poll_interval: float,
        jitter: float,
        http_client_factory: HttpClientFactory | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self._outbox = outbox
        self.listener = listener
        self._guards = dict(guards)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.concurrency = concurrency
        self.target_concurrency = target_concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.jitter = jitter
        self._client_factory = http_client_factory
        self._sealer = sealer
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.inflight: dict[asyncio.Task[None], Job] = {}
        self._recording: set[asyncio.Future[None]] = set()
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look for due rows now."""
        self._wake.set()

    def backoff(self, attempt: int) -> float:
        """Seconds before the retry that follows attempt `attempt` (1-based), with jitter."""
        spread = random.uniform(1.0 - self.jitter, 1.0 + self.jitter)  # jitter, not crypto
        return backoff_delay(attempt, self.base_delay, self.max_delay, spread)

    def _default_client(self, kind: str) -> httpx.AsyncClient:
        """A client whose every connection passes the guard of this kind of target."""
        return guarded_client(
            self._guards[kind],
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency),
            headers={"User-Agent": f"wahttp-webhooks/{__version__}"},
        )

    def start(self) -> None:
        """Run in the background (idempotent)."""
        if self.running:
            return
        self._stopping = False
        if not self._clients:
            if self._client_factory is not None:
                shared = self._client_factory()
                self._clients = {"session": shared, "global": shared}
            else:
                self._clients = {kind: self._default_client(kind) for kind in self._guards}
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; let in-flight deliveries finish within `timeout`, release the rest.

        A delivery cut short is given back at once (its attempt not counted), so another
        worker, or this service after a restart, sends it again without waiting for a lease.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            _done, pending = await asyncio.wait([task], timeout=timeout)
            if pending:  # stuck on the database: give up on it
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.inflight:
            remaining = max(0.0, deadline - loop.time())
            _done, pending = await asyncio.wait(list(self.inflight), timeout=remaining)
            # Those writing their outcome already finish that (shielded); the others stop.
            unfinished = [self.inflight[t] for t in pending if not self.inflight[t].recording]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if unfinished:
                log.warning("webhooks: %d deliveries cut short at shutdown", len(unfinished))
                with contextlib.suppress(Exception):
                    await self._outbox.release(unfinished)
        if self._recording:
            await asyncio.wait(list(self._recording), timeout=5.0)
        if self.listener is not None:
            await self.listener.close()
        clients, self._clients = self._clients, {}
        for client in {id(c): c for c in clients.values()}.values():
            await client.aclose()

    async def _run(self) -> None:
        failures = 0
        deaf = 0  # LISTEN attempts failed in a row
        while not self._stopping:
            self._wake.clear()
            try:
                listening = self.listener is None or await self.listener.ensure()
                deaf = 0 if listening else deaf + 1
                free = self.concurrency - len(self.inflight)
                if free <= 0:
                    delay = self.poll_interval  # a finished delivery wakes us
                else:
                    full, limit = self._room(free)
                    claimed = await self._outbox.claim(limit, self.lease, full)
                    for job in claimed:
                        self._spawn(job)
                    if len(claimed) == free:
                        # All slots filled: more may be due, look again when one frees up.
                        delay = self.poll_interval
                    elif len(claimed) == limit:
                        delay = 0.0  # a claim kept small for the URLs' slots: more may be due
                    else:
                        delay = await self._next_due(self._room(free)[0])
                failures = 0
                if deaf:
                    # No NOTIFY can wake us: try LISTEN again soon rather than poll slowly.
                    delay = min(delay, self._listen_retry_delay(deaf))
            except Exception as exc:
                failures += 1
                delay = self._listen_retry_delay(failures)
                log.warning(
                    "webhooks: outbox unavailable (%s); again in %.1fs", type(exc).__name__, delay
                )
                log.debug("webhooks: outbox error", exc_info=True)
                # The database failed under us: the LISTEN connection may be as dead without
                # knowing it yet, so listen anew (then claim) rather than miss notifications.
                if self.listener is not None:
                    await self.listener.close()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _listen_retry_delay(self, failures: int) -> float:
        """How soon to look again after `failures` failed LISTENs or outbox errors in a row
        (not the deliveries' backoff: this one is short and bounded by the poll)."""
        return min(self.poll_interval, 0.1 * 2.0 ** min(failures, 8))

    def _room(self, free: int) -> tuple[list[str], int]:
        urls = (job.url for job in self.inflight.values())
        return claim_room(urls, free, self.target_concurrency)

    async def _next_due(self, full: list[str]) -> float:
        seconds = await self._outbox.next_due(full)
        if seconds is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.01, seconds))

    def _spawn(self, job: Job) -> None:
        task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.id}")
        self.inflight[task] = job

        def done(t: asyncio.Task[None]) -> None:
            self.inflight.pop(t, None)
            self._wake.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("webhook delivery %d crashed: %r", job.id, t.exception())

        task.add_done_callback(done)

    async def _deliver(self, job: Job) -> None:
        if job.attempts > self.max_attempts:
            # A lease that ran out after the last attempt (its worker died): no more tries.
            outcome = dead("lease expired after the last attempt")
        else:
            outcome = await self.attempt(job)
        level = _LOG_LEVELS[outcome.verdict]
        if log.isEnabledFor(level):
            # Ids, type, status code and attempt only: no body, secret, URL or error text.
            answer = "no answer" if outcome.code is None else f"HTTP {outcome.code}"
            then = (
                f"retry in {outcome.delay:.2f}s"
                if outcome.verdict is Verdict.RETRY
                else outcome.status
            )
            log.log(
                level,
                "webhook delivery %d (event %s, %s) attempt %d: %s, %s",
                job.id,
                job.event_id,
                job.type,
                job.attempts,
                answer,
                then,
            )
        # The outcome is written even if stop() cancels us now: a delivered row must not be
        # given back and sent again.
        job.recording = True
        record = asyncio.ensure_future(self.record(job, outcome))
        self._recording.add(record)
        record.add_done_callback(self._recording.discard)
        await asyncio.shield(record)

    def _decide(
        self, job: Job, code: int | None, error: str | None = None, hint: float | None = None
    ) -> Outcome:
        return decide(
            code,
            attempts=job.attempts,
            max_attempts=self.max_attempts,
            backoff=self.backoff(job.attempts),
            max_delay=self.max_delay,
            retry_after=hint,
            error=error,
        )

    async def attempt(self, job: Job) -> Outcome:
        """One POST; its outcome (delivered, retry after a delay, or dead)."""
        if job.secret is None:
            return self._decide(job, None, "no signing secret for this target")
        data = job.data
        if is_sealed(data):
            try:
                where = seal_context(job.event_id, job.session_id)
                data = json.loads(open_sealed(self._sealer, data, where))
            except (SealError, ValueError) as exc:
                return dead(f"cannot open the stored event: {exc}")
        body = encode_body(job.event_id, job.type, job.session_id, job.occurred_at, data)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            HEADER_EVENT: job.type,
            HEADER_EVENT_ID: job.event_id,
            HEADER_DELIVERY: str(job.id),
            HEADER_ATTEMPT: str(job.attempts),
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(job.secret, timestamp, body),
        }
        client = self._clients.get(job.target)
        if client is None:
            raise RuntimeError("the deliverer is not running")
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream("POST", job.url, content=body, headers=headers) as resp:
                    code = resp.status_code
                    hint = retry_after(resp.headers.get("retry-after"), time.time())
        except AddressNotAllowed as exc:
            # Refused before any connection: dead at once, nothing learnt about the port.
            return dead(str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return self._decide(job, None, f"timeout after {self.timeout:g}s")
        except Exception as exc:  # connection refused, reset, TLS, invalid URL, ...
            return self._decide(job, None, error_text(exc))
        return self._decide(job, code, hint=hint)

    async def record(self, job: Job, outcome: Outcome) -> None:
        """Write the outcome, trying a fresh connection a few times; logged, never raised."""
        for attempt in range(_RECORD_TRIES):
            try:
                recorded = await self._outbox.record(job, outcome)
            except Exception as exc:  # any database failure: a fresh connection may work
                if attempt + 1 == _RECORD_TRIES:
                    log.warning(
                        "webhook delivery %d: cannot record the outcome (%s); it will be retried"
                        " when its lease expires",
                        job.id,
                        type(exc).__name__,
                    )
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if not recorded:
                log.warning(
                    "webhook delivery %d: outcome not recorded, the row is no longer ours"
                    " (recorded by an earlier try, or the lease ran out)",
                    job.id,
                )
            return
