"""The Client facade: one linked device's connection, a tag -> handler table, iq queries, events.

Features live in their own modules (pair, login, prekeys, keepalive, stream, ib) and register
their handlers in `handlers.TABLE`; this module only owns the connection's life cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from wahttp.wa.auth.cache import KeyCache
from wahttp.wa.auth.creds import Creds, new_creds
from wahttp.wa.auth.signal_store import SignalStore
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.binary import Node
from wahttp.wa.client import handlers, ib
from wahttp.wa.client import send as send_mod
from wahttp.wa.client import version as version_mod
from wahttp.wa.client.abprops import ABProps
from wahttp.wa.client.appstate_keys import KeyRequests
from wahttp.wa.client.config import ClientConfig
from wahttp.wa.client.connection import NodeConnection, open_connection
from wahttp.wa.client.events import Disconnected, Event, LoggedOut
from wahttp.wa.client.lane import Lane
from wahttp.wa.client.messages import Message, text_message
from wahttp.wa.client.receipts import read_receipt
from wahttp.wa.close import CloseCode, is_logged_out, restarts
from wahttp.wa.errors import ConnectionClosed, IQError, StoreError, WAError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid
from wahttp.wa.logs import SessionLogger
from wahttp.wa.transport import Transport

log = logging.getLogger(__name__)

EventHandler = Callable[[Event], Awaitable[None] | None]


class SentStore(Protocol):
    """Durable copies of sent messages, to re-encrypt them when a device asks (retry)."""

    async def save_sent(self, message_id: str, chat: str, payload: bytes) -> None: ...

    async def load_sent(self, message_id: str) -> tuple[str, bytes] | None: ...


TransportFactory = Callable[[], Awaitable[Transport]]
# How many sent messages are kept for answering retry receipts.
RECENT_SENT = 1000


class Client:
    """A WhatsApp Web companion device. `run()` keeps it connected across 515 restarts."""

    def __init__(
        self,
        store: AuthStore,
        config: ClientConfig | None = None,
        *,
        session_id: str = "",
        transport_factory: TransportFactory | None = None,
        sent_store: SentStore | None = None,
    ) -> None:
        self.sent_store = sent_store
        # Session records and LID mappings served from memory while it runs (see cache.py).
        self.key_cache = KeyCache(store)
        self.store: AuthStore = self.key_cache
        self.config = config or ClientConfig()
        self.session_id = session_id
        self.log = SessionLogger(log, session_id)
        self._creds: Creds | None = None
        self._creds_lock = asyncio.Lock()
        self._transport_factory = transport_factory
        self._conn: NodeConnection | None = None
        self._event_handlers: list[EventHandler] = []
        self._pending: dict[str, asyncio.Future[Node]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        # Receipts are recorded here, in order, beside the reader (see lane.py).
        self.receipts = Lane("wa-receipts", logger=self.log)
        self._closed: asyncio.Future[tuple[int, str]] | None = None
        self._close_reason: tuple[int, str] | None = None
        self._ids = itertools.count(1)
        self._id_prefix = f"{secrets.randbelow(100000)}.{secrets.randbelow(100000)}-"
        self.is_open = False  # true between <success> handling and the close
        self.last_received = 0.0
        # Messaging state: Signal operations are serialised; acks resolve send waiters.
        self.e2e_lock = asyncio.Lock()
        # user -> (when fetched, device ids): see usync.fetch_devices
        self.device_cache: OrderedDict[str, tuple[float, list[int]]] = OrderedDict()
        self.recent_sent: OrderedDict[str, tuple[Jid, Message]] = OrderedDict()
        # Ids of messages handed over lately: a redelivered one is acked, not asked again.
        self.recent_received: OrderedDict[str, None] = OrderedDict()
        self.retry_counts: dict[str, int] = {}
        self._acks: dict[str, asyncio.Future[Node]] = {}
        self._signal: SignalStore | None = None
        # The server's AB props (fetched after each login) and privacy-token issues in flight.
        self.ab_props = ABProps()
        self.tc_issuing: set[str] = set()
        self.tc_pruned_at: float | None = None  # monotonic time of the last token pruning
        # App-state syncs run one at a time (wahttp.wa.client.appstate).
        self.appstate_lock = asyncio.Lock()
        self.offline_sync = ib.OfflineSync()
        # App-state key ids asked of our phone lately (wahttp.wa.client.appstate_keys).
        self.appstate_key_requests = KeyRequests()

    # -- credentials -------------------------------------------------------------------------
    @property
    def creds(self) -> Creds:
        if self._creds is None:
            raise WAError("credentials not loaded: call connect() first")
        return self._creds

    async def load_creds(self) -> Creds:
        """The credentials, read (or made and saved, for a new device) once.

        One at a time: two callers at once (connect() and the owner asking whether the device
        is linked) must not both find nothing and each make a device of its own, or the stream
        runs on one noise key while the creds we keep hold the other."""
        async with self._creds_lock:
            if self._creds is None:
                creds = await self.store.load_creds()
                if creds is None:
                    creds = new_creds()
                    await self.store.save_creds(creds)
                self._creds = creds
        return self._creds

    async def save_creds(self) -> None:
        await self.store.save_creds(self.creds)

    @property
    def signal(self) -> SignalStore:
        if self._signal is None or self._signal.creds is not self.creds:
            self._signal = SignalStore(self.store, self.creds)
        return self._signal

    @property
    def me(self) -> Jid:
        """Our own device JID (PN); raises when not linked."""
        me = self.creds.me
        if me is None or self.creds.account is None:
            raise WAError("not linked")
        return Jid.parse(me.id)

    # -- events ------------------------------------------------------------------------------
    def add_event_handler(self, handler: EventHandler) -> None:
        self._event_handlers.append(handler)

    async def emit(self, event: Event, *, must_succeed: bool = False) -> None:
        """Run the handlers in order. With must_succeed a failing handler's error propagates,
        so the caller does not acknowledge what the owner could not take (it is redelivered)."""
        for handler in list(self._event_handlers):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except OSError as exc:  # the owner's storage is unreachable: no trace to show
                if must_succeed:
                    raise
                self.log.warning(
                    "event handler failed on %s: %s", type(event).__name__, type(exc).__name__
                )
            except Exception:
                if must_succeed:
                    raise
                self.log.exception("event handler failed on %s", type(event).__name__)

    # -- connection life cycle ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and self._closed is not None and not self._closed.done()

    async def connect(self) -> None:
        """Open the stream (handshake + login or registration) and start reading."""
        if self.connected:
            raise WAError("already connected")
        # Another worker may have owned the session since we last did: start from the store.
        self.key_cache.forget()
        creds = await self.load_creds()
        if self.config.version_auto:
            self.config.version = await version_mod.resolve(
                self.config.version_url, self.config.version
            )
        transport = await self._transport_factory() if self._transport_factory else None
        self._conn = await open_connection(creds, self.config, transport)
        self._closed = asyncio.get_running_loop().create_future()
        self._close_reason = None
        self.last_received = asyncio.get_running_loop().time()
        self.offline_sync = ib.OfflineSync()  # this stream's backlog (ib.py)
        self._reader = asyncio.create_task(self._read_loop(self._conn), name="wa-reader")

    async def wait_closed(self) -> tuple[int, str]:
        if self._closed is None:
            raise WAError("not connected")
        return await asyncio.shield(self._closed)

    async def run(self) -> tuple[int, str]:
        """Connect and stay connected through server-requested restarts (515, as after pairing).

        Returns the (code, reason) that finally ended the connection; reconnecting after other
        drops is the owner's policy (the session manager's backoff), not this method's.
        """
        while True:
            await self.connect()
            code, reason = await self.wait_closed()
            if not restarts(code):
                return code, reason
            self.log.info("server asked for a restart (515): reconnecting")

    async def disconnect(self) -> None:
        """Close the stream cleanly; a no-op when already closed."""
        await self.close(CloseCode.TRANSPORT_CLOSED, "closed by us")

    async def close(self, code: int, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = (code, reason)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def request_pairing_code(self, phone_number: str) -> str:
        """Link by phone number: returns the 8-character code the user types on the phone."""
        from wahttp.wa.client.pair_code import request_pairing_code

        return await request_pairing_code(self, phone_number)

    async def logout(self) -> None:
        """Unlink this device from the account, then forget the auth state."""
        creds = self.creds
        if self.connected and creds.me is not None:
            node = Node(
                "iq",
                {"to": S_WHATSAPP_NET, "type": "set", "id": self.new_id(), "xmlns": "md"},
                [Node("remove-companion-device", {"jid": creds.me.id, "reason": "user_initiated"})],
            )
            with contextlib.suppress(WAError):
                await self.send_node(node)
        await self.close(CloseCode.LOGGED_OUT, "logged out by us")
        await self.store.clear()
        self._creds = None

    async def _read_loop(self, conn: NodeConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                node = await conn.recv_node()
                self.last_received = loop.time()
                await self._dispatch(node)
                # Do not hold the last node while an idle link waits for the next one (after a
                # login that is the digest answer: one child per pre-key).
                del node
        except ConnectionClosed as exc:
            self._finish(exc.code, exc.reason)
        except WAError as exc:
            self.log.warning("closing after a protocol error: %s", type(exc).__name__)
            self._finish(CloseCode.BAD_SESSION, f"protocol error: {type(exc).__name__}")
        except asyncio.CancelledError:
            self._finish(CloseCode.TRANSPORT_CLOSED, "cancelled")
            raise
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
            await self._after_close()

    def _finish(self, code: int, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = (code, reason)

    async def _after_close(self) -> None:
        code, reason = self._close_reason or (CloseCode.TRANSPORT_CLOSED, "connection closed")
        self.is_open = False
        for task in list(self._tasks):
            task.cancel()
        # Receipts not yet recorded were not acked either: the server delivers them again.
        await self.receipts.close()
        for fut in [*self._pending.values(), *self._acks.values()]:
            if not fut.done():
                fut.set_exception(ConnectionClosed(code, reason))
        self._pending.clear()
        self._acks.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result((code, reason))
        self.log.info("connection closed (%s): %s", code, reason)
        if is_logged_out(code):
            await self.emit(LoggedOut(code, reason))
        else:
            await self.emit(Disconnected(code, reason))

    async def _dispatch(self, node: Node) -> None:
        if node.tag == "iq" and node.attr("type") in ("result", "error"):
            fut = self._pending.pop(node.attr("id") or "", None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(node)
                return
        handler = handlers.TABLE.get(node.tag)
        if handler is None:
            self.log.debug("no handler for <%s>", node.tag)
            return
        try:
            await handler(self, node)
        except WAError:
            raise
        except OSError as exc:
            # The owner's storage is unreachable (its database is down): close the stream
            # rather than go on half done. Nothing unrecorded was acknowledged, so the server
            # delivers it again once we are back.
            raise StoreError(f"the store is unavailable ({type(exc).__name__})") from exc
        except Exception:
            # A bug in one feature must not kill the connection; it is logged with its trace.
            self.log.exception("handler for <%s> failed", node.tag)
        if node.attrs.get("offline"):  # a backlog stanza handled: maybe ask for the next batch
            await ib.offline_stanza_handled(self)

    # -- sending -----------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a background job tied to this connection: it is cancelled when it closes."""

        async def runner() -> Any:
            return await coro

        task = asyncio.create_task(runner(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("background job %s failed: %r", task.get_name(), task.exception())

    async def send_node(self, node: Node) -> None:
        if self._conn is None or not self.connected:
            raise ConnectionClosed(CloseCode.TRANSPORT_CLOSED, "not connected")
        await self._conn.send_node(node)

    async def send_and_wait_ack(self, node: Node, timeout: float) -> Node:
        """Send a stanza and wait for the server's <ack> with its id."""
        message_id = node.attrs["id"]
        fut: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self._acks[message_id] = fut
        try:
            await self.send_node(node)
            return await send_mod.wait_acked(fut, timeout)
        finally:
            self._acks.pop(message_id, None)

    def resolve_ack(self, message_id: str, node: Node) -> None:
        fut = self._acks.get(message_id)
        if fut is not None and not fut.done():
            fut.set_result(node)

    async def remember_sent(
        self, message_id: str, chat: Jid, message: Message, *, durable: bool = True
    ) -> None:
        """Keep a message to re-encrypt it on a retry receipt; in the SentStore too (before it
        is sent) unless `durable` is False: the caller has stored it there already."""
        self.recent_sent[message_id] = (chat, message)
        while len(self.recent_sent) > RECENT_SENT:
            self.recent_sent.popitem(last=False)
        if durable and self.sent_store is not None:
            await self.sent_store.save_sent(message_id, str(chat), message.SerializeToString())

    async def recall_sent(self, message_id: str) -> tuple[Jid, Message] | None:
        found = self.recent_sent.get(message_id)
        if found is None and self.sent_store is not None:
            stored = await self.sent_store.load_sent(message_id)
            if stored is not None:
                found = (Jid.parse(stored[0]), Message.FromString(stored[1]))
        return found

    async def learn_lid(self, pn_user: str, lid_user: str, devices: list[int]) -> None:
        """Record PN -> LID (and move PN-addressed sessions of `devices` over) unless this
        mapping is known already (a read the key cache answers once it has seen it)."""
        if await self.signal.store_lid_mapping(lid_user, pn_user):
            await self.signal.migrate_sessions(pn_user, lid_user, devices)

    async def send_text(self, to: Jid, text: str) -> send_mod.SendResult:
        """Send a text to a chat (user JID); returns once the server has acked it."""
        return await send_mod.send_message(self, to, text_message(text))

    async def send_read(self, chat: Jid, ids: list[str]) -> None:
        """Mark received messages of a chat as read (the sender sees blue ticks)."""
        if ids:
            await self.send_node(read_receipt(str(chat), ids))

    async def query(self, node: Node, timeout: float | None = None) -> Node:
        """Send an iq and wait for its result; type=error raises IQError."""
        if "id" not in node.attrs:
            node.attrs["id"] = self.new_id()
        fut: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self._pending[node.attrs["id"]] = fut
        try:
            await self.send_node(node)
            result = await asyncio.wait_for(fut, timeout or self.config.query_timeout)
        finally:
            self._pending.pop(node.attrs["id"], None)
        if result.attr("type") == "error":
            err = result.child("error")
            code = int(err.attr("code") or 0) if err is not None else 0
            raise IQError(code, (err.attr("text") or "") if err is not None else "")
        return result
