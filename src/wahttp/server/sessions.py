"""The session manager: one WhatsApp client per session, each with a truthful state machine.

It restores every stored session at start, reconnects with exponential backoff and jitter,
follows WhatsApp's close codes (wa/close.py `decide`: 515 restart at once, 401 logged out ->
remove, 440 replaced -> stop) and closes every socket on shutdown within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from wahttp.server.db import describe, is_unavailable
from wahttp.server.events import SendFailure, ServiceEvents
from wahttp.server.state import SessionState
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.multifile import AuthFolderError
from wahttp.wa.auth.sealing import SealError
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.client import (
    Client,
    ClientConfig,
    Connected,
    Disconnected,
    Event,
    LoggedOut,
    PairSuccess,
    QRCode,
)
from wahttp.wa.client.client import SentStore
from wahttp.wa.client.events import (
    CallOffer,
    ContactPicture,
    MessageAck,
    MessageReceived,
    OfflineSyncCompleted,
)
from wahttp.wa.client.messages import new_message_id, text_message
from wahttp.wa.client.send import SendError, SendResult, send_message
from wahttp.wa.close import CloseCode, Next, decide, needs_linked, restarts
from wahttp.wa.errors import CertificateError, ConnectionClosed, HandshakeError, WAError
from wahttp.wa.jid import Jid
from wahttp.wa.logs import SessionLogger

log = logging.getLogger(__name__)

StoreFactory = Callable[[str], AuthStore]
StatusListener = Callable[["ManagedSession"], Awaitable[None] | None]


# How long a pairing code is answered again to the same number (WhatsApp lets the phone enter
# one for a few minutes; asking again sooner would replace the code the user is typing).
PAIRING_CODE_TTL = 180.0


@dataclass(frozen=True, slots=True)
class PendingCode:
    number: str
    code: str
    expires: float  # event loop time


@dataclass(frozen=True, slots=True)
class DisconnectInfo:
    """The last close, as the status shows it (`code` a plain int: a CloseCode or any other)."""

    code: int
    reason: str
    at: datetime

    @classmethod
    def now(cls, code: int, reason: str) -> DisconnectInfo:
        return cls(int(code), reason, _now())


CERTIFICATE_HINT = "server certificate refused: check WAHTTP_WA_ROOT_KEY / WAHTTP_WA_URL"


class CertificateRefused(CertificateError):
    """The last connection attempt refused the server's certificate chain.

    Raised at once to callers waiting for a registration stream (pair-request, /qr), instead
    of their waiting for one that cannot come; the session keeps retrying with backoff.
    """


def _now() -> datetime:
    return datetime.now(UTC)


class ManagedSession:
    """One session: its client, its run loop, and the truth about its state."""

    def __init__(
        self, manager: SessionManager, session_id: str, push_name: str | None = None
    ) -> None:
        self.manager = manager
        self.id = session_id
        self.log = SessionLogger(log, session_id)
        self.store = manager.make_store(session_id)
        config = manager.client_config()
        if push_name:
            config.push_name = push_name
        sent_store = manager.sent_store(session_id) if manager.sent_store else None
        self.client = Client(self.store, config, session_id=session_id, sent_store=sent_store)
        self.client.add_event_handler(self._on_event)
        self.state = SessionState.CREATED
        self.since = _now()
        self.last_disconnect: DisconnectInfo | None = None
        # The server delivered this stream's offline backlog (`<ib><offline>`): what comes now
        # is live (Baileys' receivedPendingNotifications). False again on each new stream.
        self.received_pending_notifications = False
        self.qr: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._registering = asyncio.Event()
        self._pairing = asyncio.Lock()
        self._refused: DisconnectInfo | None = None  # the last attempt's certificate refusal
        self._refusal = asyncio.Event()
        self._refusal_logged: str | None = None  # logged once until a connection succeeds
        self._pending_code: PendingCode | None = None

    # -- state -------------------------------------------------------------------------------
    async def set_state(self, state: SessionState) -> None:
        if state == self.state:
            return
        self.log.info("state %s -> %s", self.state, state)
        self.state, self.since = state, _now()
        if state == SessionState.CONNECTING:
            self.received_pending_notifications = False
        if state != SessionState.AWAITING_PAIRING:
            self.qr = None
            self._registering.clear()
            self._pending_code = None  # the registration stream it was asked on is gone
        await self.manager.notify(self)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stuck(self) -> bool:
        """Its run loop ended although nobody stopped it and it did not stop itself."""
        return (
            self._task is not None
            and self._task.done()
            and not self._stopping
            and self.state not in (SessionState.STOPPED, SessionState.LOGGED_OUT)
        )

    @property
    def jid(self) -> str | None:
        creds = self.client._creds
        return creds.me.id if creds and creds.me and creds.account else None

    @property
    def lid(self) -> str | None:
        creds = self.client._creds
        return creds.me.lid if creds and creds.me and creds.account else None

    async def is_linked(self) -> bool:
        try:
            creds = await self.client.load_creds()
        except SealError:  # not usable without the right key; _connect_once logs why
            return False
        return creds.is_linked

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"session-{self.id}")

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, QRCode):
            self.qr = event.qr
            await self.set_state(SessionState.AWAITING_PAIRING)
            self._registering.set()
        elif isinstance(event, Connected):
            await self.set_state(SessionState.OPEN)
        elif isinstance(event, OfflineSyncCompleted):
            self.received_pending_notifications = True
        elif isinstance(event, PairSuccess):
            self.log.info("linked to %s", event.jid)
        elif isinstance(event, Disconnected | LoggedOut):
            self.last_disconnect = DisconnectInfo.now(event.code, event.reason)
        elif isinstance(event, MessageReceived) and self.manager.events is not None:
            await self.manager.events.on_message(self.id, event)
        elif isinstance(event, MessageAck) and self.manager.events is not None:
            await self.manager.events.on_ack(self.id, event)
        elif isinstance(event, CallOffer) and self.manager.events is not None:
            await self.manager.events.on_call(self.id, event)
        elif isinstance(event, ContactPicture) and self.manager.events is not None:
            await self.manager.events.on_picture(self.id, event)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            await self.set_state(SessionState.CONNECTING)
            code, reason = await self._connect_once()
            if self._stopping:
                break
            if self.state == SessionState.OPEN or restarts(code):
                attempt = 0
            try:
                then = await self._after_close(code, reason)
            except Exception as exc:  # e.g. the database is down: retry, never end the session
                self._log_failure("after a close", exc)
                then = Next.RECONNECT
            if then is Next.RESTART:
                continue
            if then is not Next.RECONNECT:
                return
            delay = self.manager.backoff(attempt)
            attempt += 1
            await self.set_state(SessionState.RECONNECTING)
            self.log.info("reconnecting in %.1fs after %s", delay, code)
            await asyncio.sleep(delay)
        await self.set_state(SessionState.STOPPED)

    async def _connect_once(self) -> tuple[int, str]:
        # Waiters for a registration stream hear of a refusal during the backoff after it;
        # from here on they wait for this attempt's outcome.
        self._refused = None
        self._refusal.clear()
        try:
            await self.client.connect()
        except CertificateError as exc:
            return self._certificate_refused(exc)
        except HandshakeError as exc:
            return self._attempt_failed(CloseCode.FAILED, f"handshake failed: {exc}")
        except ConnectionClosed as exc:  # not reached (refused, timed out): the status says so
            return self._attempt_failed(exc.code, exc.reason)
        except SealError as exc:  # wrong or missing WAHTTP_ENCRYPTION_KEY: say so loudly
            self.log.error("auth state cannot be opened: %s", exc)
            return self._attempt_failed(CloseCode.FAILED, str(exc))
        except WAError as exc:
            return self._attempt_failed(CloseCode.FAILED, str(exc))
        except Exception as exc:  # the database down (creds unreadable), or a bug: retry later
            self._log_failure("connecting", exc)
            reason = "database unavailable" if is_unavailable(exc) else "internal error"
            return self._attempt_failed(CloseCode.FAILED, reason)
        self._refusal_logged = None
        code, reason = await self.client.wait_closed()
        self.last_disconnect = DisconnectInfo.now(code, reason)
        return code, reason

    def _attempt_failed(self, code: int, reason: str) -> tuple[int, str]:
        self.last_disconnect = DisconnectInfo.now(code, reason)
        return code, reason

    def _certificate_refused(self, exc: CertificateError) -> tuple[int, str]:
        """Record a refused server certificate: in the status, and once in the log."""
        reason = f"{CERTIFICATE_HINT} ({exc})"
        if self._refusal_logged != reason:
            self.log.error("%s; retrying with backoff", reason)  # once, not at every retry
            self._refusal_logged = reason
        else:
            self.log.debug("%s (again)", CERTIFICATE_HINT)
        refused = DisconnectInfo.now(CloseCode.CERTIFICATE_REFUSED, reason)
        self._refused = self.last_disconnect = refused
        self._refusal.set()
        return refused.code, reason

    def _log_failure(self, doing: str, exc: Exception) -> None:
        if is_unavailable(exc):
            self.log.warning("%s: the database is unavailable (%s)", doing, describe(exc))
        else:
            self.log.exception("%s failed", doing)

    async def _after_close(self, code: int, reason: str) -> Next:
        """What a close means (wa/close.py `decide`), and the state change it makes."""
        linked = await self.is_linked() if needs_linked(code) else True
        then = decide(code, linked=linked)
        if then is Next.LOGGED_OUT:
            self.log.warning("logged out (%s): removing the session's auth", code)
            await self.set_state(SessionState.LOGGED_OUT)
            await self.manager.on_logged_out(self)
        elif then in (Next.REPLACED, Next.FATAL):
            self.log.warning("stopping: %s (%s)", reason, code)
            await self.set_state(SessionState.STOPPED)
        elif then is Next.STOP:
            # Nobody scanned: stop showing QRs until someone asks again (pair-request, /qr).
            await self.set_state(SessionState.STOPPED)
        return then

    async def stop(self) -> None:
        """Close the socket cleanly and end the run loop."""
        self._stopping = True
        await self.client.disconnect()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.state not in (SessionState.LOGGED_OUT,):
            await self.set_state(SessionState.STOPPED)
        await self.flush_folder()

    async def flush_folder(self) -> None:
        """Write out what the auth folder mirror still has queued (see mirror.py)."""
        if isinstance(self.store, FolderMirror):
            try:
                await self.store.flush()
            except AuthFolderError as exc:
                self.log.error("auth folder left behind the database: %s", exc)

    async def wait_registering(self, timeout: float) -> None:
        """Until a registration stream is open (QR shown); starts the session if needed.

        TimeoutError after `timeout`; CertificateRefused as soon as an attempt refuses the
        server's certificate (or at once if the last one did): waiting cannot help then.
        """
        if not self.running:
            self.start()
        if self._registering.is_set():
            return
        registering = asyncio.ensure_future(self._registering.wait())
        refused = asyncio.ensure_future(self._refusal.wait())
        try:
            await asyncio.wait(
                (registering, refused), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            registering.cancel()
            refused.cancel()
        if self._registering.is_set():
            return
        if self._refused is not None:
            raise CertificateRefused(self._refused.reason)
        raise TimeoutError

    async def send_text(self, to: Jid, text: str) -> SendResult:
        """Send a text; its status is recorded (pending, then sent or failed)."""
        events = self.manager.events
        message_id = new_message_id()
        message = text_message(text)
        if events is not None:
            payload = message.SerializeToString()
            await events.before_send(self.id, message_id, str(to), payload)
        try:
            result = await send_message(
                self.client, to, message, message_id, stored=events is not None
            )
        except BaseException as exc:
            if events is not None:
                failure = SendFailure(exc.code, exc.reason) if isinstance(exc, SendError) else None
                await events.after_send(self.id, message_id, str(to), False, failure)
            raise
        if events is not None:
            try:
                await events.after_send(self.id, message_id, str(to), True)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # WhatsApp has it: answer so (a 5xx would have the caller send it twice); its
                # row stays pending until a receipt moves it on.
                self.log.warning("message %s sent; its status not recorded", message_id)
        return result

    async def request_pairing_code(
        self, number: str, *, before_new: Callable[[], None] | None = None
    ) -> str:
        """A pairing code for `number` (digits, normalized): the pending one if there is one.

        While a code asked for the same number is pending (same registration stream, under
        PAIRING_CODE_TTL old), every caller gets that code: a new one would replace it, and
        the user may be typing it. A different number replaces it. `before_new` runs (and may
        raise, e.g. a rate limit) only when a new code is to be asked for.
        """
        async with self._pairing:  # concurrent callers queue here and then share the code
            pending = self._pending_code
            loop = asyncio.get_running_loop()
            if (
                pending is not None
                and pending.number == number
                and loop.time() < pending.expires
                and self.state == SessionState.AWAITING_PAIRING
                and self.client.connected
            ):
                return pending.code
            if before_new is not None:
                before_new()
            await self.wait_registering(self.manager.pairing_wait)
            code = await self.client.request_pairing_code(number)
            self._pending_code = PendingCode(number, code, loop.time() + PAIRING_CODE_TTL)
            return code

    async def logout(self) -> None:
        """Unlink from WhatsApp when linked and connected, then stop."""
        self._stopping = True
        if self.client.connected and await self.is_linked():
            with contextlib.suppress(WAError):
                await self.client.logout()
        await self.stop()


class SessionManager:
    """All sessions of this process."""

    def __init__(
        self,
        make_store: StoreFactory,
        client_config: Callable[[], ClientConfig],
        *,
        auth_dir: Path | None = None,
        reconnect_base: float = 1.0,
        reconnect_max: float = 60.0,
        pairing_wait: float = 20.0,
        on_logged_out: Callable[[str], Awaitable[None]] | None = None,
        events: ServiceEvents | None = None,
        sent_store: Callable[[str], SentStore] | None = None,
    ) -> None:
        self.events = events
        self.sent_store = sent_store
        self.make_store = make_store
        self.client_config = client_config
        self.auth_dir = auth_dir
        self.reconnect_base = reconnect_base
        self.reconnect_max = reconnect_max
        self.pairing_wait = pairing_wait
        self._on_logged_out = on_logged_out
        self.sessions: dict[str, ManagedSession] = {}
        self._listeners: list[StatusListener] = []

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    async def notify(self, session: ManagedSession) -> None:
        for listener in self._listeners:
            try:
                result = listener(session)
                if result is not None:
                    await result
            except Exception as exc:
                if is_unavailable(exc):
                    session.log.warning("status not recorded: %s", describe(exc))
                else:
                    log.exception("status listener failed")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [50%, 150%] of the nominal delay."""
        nominal = min(self.reconnect_max, self.reconnect_base * 2.0 ** min(attempt, 32))
        return nominal * random.uniform(0.5, 1.5)  # jitter, not crypto

    def get(self, session_id: str) -> ManagedSession | None:
        return self.sessions.get(session_id)

    def add(
        self, session_id: str, *, start: bool = True, push_name: str | None = None
    ) -> ManagedSession:
        session = self.sessions.get(session_id)
        if session is None:
            session = ManagedSession(self, session_id, push_name)
            self.sessions[session_id] = session
        if start:
            session.start()
        return session

    async def remove(self, session_id: str, *, logout: bool) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await (session.logout() if logout else session.stop())
            if isinstance(session.store, FolderMirror):
                await session.store.discard()
        self.remove_folder(session_id)

    async def release(self, session_id: str) -> None:
        """Stop running this session here (another worker takes it); its auth stays."""
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await session.stop()

    def remove_folder(self, session_id: str) -> None:
        if self.auth_dir is not None:
            folder = self.auth_dir / session_id
            if folder.resolve().parent == self.auth_dir.resolve() and folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    async def on_logged_out(self, session: ManagedSession) -> None:
        """As the original: a logged-out session's row and folder are deleted."""
        self.sessions.pop(session.id, None)
        with contextlib.suppress(Exception):
            await session.store.clear()
        self.remove_folder(session.id)
        if self._on_logged_out is not None:
            await self._on_logged_out(session.id)

    async def stop_all(self, timeout: float) -> None:
        """Close every socket cleanly; whatever is still running at the deadline is cancelled."""
        sessions = list(self.sessions.values())
        if not sessions:
            return
        _done, pending = await asyncio.wait(
            [asyncio.create_task(s.stop()) for s in sessions], timeout=timeout
        )
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d sessions did not stop within %.0fs", len(pending), timeout)
