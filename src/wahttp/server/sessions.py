"""The session manager: one WhatsApp client per session, each with a truthful state machine.

It restores every stored session at start, reconnects with exponential backoff and jitter,
follows WhatsApp's close codes (515 restart at once, 401 logged out -> remove, 440 replaced ->
stop) and closes every socket on shutdown within a deadline.
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
from wahttp.wa.client.events import MessageAck, MessageReceived
from wahttp.wa.client.messages import new_message_id, text_message
from wahttp.wa.client.send import SendError, SendResult, send_message
from wahttp.wa.errors import CertificateError, ConnectionClosed, HandshakeError, WAError
from wahttp.wa.jid import Jid
from wahttp.wa.logs import SessionLogger

log = logging.getLogger(__name__)

RESTART = 515
REPLACED = 440
QR_ENDED = 408
# Closes after which retrying cannot help: banned, outdated client, rejected user agent.
FATAL = frozenset({402, 405, 409, 411})
LOGGED_OUT = frozenset({401, 403, 406})

StoreFactory = Callable[[str], AuthStore]
StatusListener = Callable[["ManagedSession"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class DisconnectInfo:
    code: int
    reason: str
    at: datetime


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
        self.qr: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._registering = asyncio.Event()

    # -- state -------------------------------------------------------------------------------
    async def set_state(self, state: SessionState) -> None:
        if state == self.state:
            return
        self.log.info("state %s -> %s", self.state, state)
        self.state, self.since = state, _now()
        if state != SessionState.AWAITING_PAIRING:
            self.qr = None
            self._registering.clear()
        await self.manager.notify(self)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

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
        elif isinstance(event, PairSuccess):
            self.log.info("linked to %s", event.jid)
        elif isinstance(event, Disconnected | LoggedOut):
            self.last_disconnect = DisconnectInfo(event.code, event.reason, _now())
        elif isinstance(event, MessageReceived) and self.manager.events is not None:
            await self.manager.events.on_message(self.id, event)
        elif isinstance(event, MessageAck) and self.manager.events is not None:
            await self.manager.events.on_ack(self.id, event)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            await self.set_state(SessionState.CONNECTING)
            code, reason = await self._connect_once()
            if self._stopping:
                break
            if self.state == SessionState.OPEN or code == RESTART:
                attempt = 0
            outcome = await self._after_close(code, reason)
            if outcome == "stop":
                return
            if outcome == "again":
                continue
            delay = self.manager.backoff(attempt)
            attempt += 1
            await self.set_state(SessionState.RECONNECTING)
            self.log.info("reconnecting in %.1fs after %s", delay, code)
            await asyncio.sleep(delay)
        await self.set_state(SessionState.STOPPED)

    async def _connect_once(self) -> tuple[int, str]:
        try:
            await self.client.connect()
        except CertificateError as exc:
            self.log.error("server certificate refused: %s", exc)
            return 495, "server certificate refused"
        except HandshakeError as exc:
            return 500, f"handshake failed: {exc}"
        except ConnectionClosed as exc:
            return exc.code, exc.reason
        except SealError as exc:  # wrong or missing WAHTTP_ENCRYPTION_KEY: say so loudly
            self.log.error("auth state cannot be opened: %s", exc)
            self.last_disconnect = DisconnectInfo(500, str(exc), _now())
            return 500, str(exc)
        except WAError as exc:
            return 500, str(exc)
        code, reason = await self.client.wait_closed()
        self.last_disconnect = DisconnectInfo(code, reason, _now())
        return code, reason

    async def _after_close(self, code: int, reason: str) -> str:
        """Decide what a close means: 'again' (at once), 'retry' (backoff) or 'stop'."""
        if code == RESTART:
            return "again"
        if code in LOGGED_OUT:
            self.log.warning("logged out (%s): removing the session's auth", code)
            await self.set_state(SessionState.LOGGED_OUT)
            await self.manager.on_logged_out(self)
            return "stop"
        if code == REPLACED or code in FATAL:
            self.log.warning("stopping: %s (%s)", reason, code)
            await self.set_state(SessionState.STOPPED)
            return "stop"
        if code == QR_ENDED and not await self.is_linked():
            # Nobody scanned: stop showing QRs until someone asks again (pair-request, /qr).
            await self.set_state(SessionState.STOPPED)
            return "stop"
        return "retry"

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
        """Until a registration stream is open (QR shown); starts the session if needed."""
        if not self.running:
            self.start()
        async with asyncio.timeout(timeout):
            await self._registering.wait()

    async def send_text(self, to: Jid, text: str) -> SendResult:
        """Send a text; its status is recorded (pending, then sent or failed)."""
        events = self.manager.events
        message_id = new_message_id()
        message = text_message(text)
        if events is not None:
            payload = message.SerializeToString()
            await events.before_send(self.id, message_id, str(to), payload)
        ok = False
        failure: SendFailure | None = None
        try:
            result = await send_message(
                self.client, to, message, message_id, stored=events is not None
            )
            ok = True
            return result
        except SendError as exc:
            failure = SendFailure(exc.code, exc.reason)
            raise
        finally:
            if events is not None:
                await events.after_send(self.id, message_id, str(to), ok, failure)

    async def request_pairing_code(self, number: str) -> str:
        await self.wait_registering(self.manager.pairing_wait)
        return await self.client.request_pairing_code(number)

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
            except Exception:
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
