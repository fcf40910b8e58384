"""The simulator's admin HTTP API: make phones, scan QRs, unlink devices, inject faults."""

from __future__ import annotations

import base64
import contextlib
import time
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from wahttp import apidocs
from wahttp.sim import appstate, media
from wahttp.sim.account import picture_changed, reregister
from wahttp.sim.calls import ring
from wahttp.sim.faults import (
    DEFAULT_CHAOS_KINDS,
    ChaosPlan,
    ConnectionFault,
    FaultError,
    FaultKind,
    new_seed,
)
from wahttp.sim.linking import LinkError, scan_qr
from wahttp.sim.network import Account, Device
from wahttp.sim.pair_code import enter_code
from wahttp.sim.server import SimServer
from wahttp.wa.binary import Node
from wahttp.wa.jid import Jid

Number = Annotated[str, Path(pattern=r"^\d{5,16}$", description="phone number, digits only")]


class NewPhone(BaseModel):
    number: str | None = Field(default=None, pattern=r"^\+?\d{5,16}$")
    push_name: str | None = Field(default=None, max_length=64)
    trusting: bool = Field(
        default=True,
        description="take a first message without this account's privacy token (privacy.py)",
    )


class PropValue(BaseModel):
    value: str | None = Field(
        default=None, max_length=256, description='"true", "false", any text; null removes it'
    )


class PropsRefresh(BaseModel):
    seconds: int = Field(ge=1, le=604800, description="the `refresh` of the props answer")


class IssueToken(BaseModel):
    to: str = Field(min_length=5, max_length=64, description="a number or a JID")


class NewPhones(BaseModel):
    count: int = Field(ge=1, le=10_000)


class Scan(BaseModel):
    qr: str = Field(min_length=1, max_length=4096)


class EnterCode(BaseModel):
    code: str = Field(min_length=8, max_length=12, pattern=r"^[0-9A-Za-z\- ]+$")


class ContactName(BaseModel):
    jid: str = Field(min_length=5, max_length=64, description="a number or a JID")
    name: str | None = Field(
        default=None, max_length=256, description="the name in the address book; null removes it"
    )
    tamper: bool = Field(default=False, description="send the patch with a flipped byte (a fault)")
    external: bool = Field(
        default=False, description="put the patch's mutations in an external blob (media host)"
    )


class ChatSettings(BaseModel):
    archive: bool | None = None
    pin: bool | None = None
    mute: int | None = Field(
        default=None, description="mute until (unix ms); -1 forever; 0 unmutes"
    )
    read: bool | None = None
    tamper: bool = Field(default=False, description="send the patch with a flipped byte (a fault)")
    external: bool = Field(
        default=False, description="put the patch's mutations in an external blob (media host)"
    )


class RotateKey(BaseModel):
    share: bool = Field(
        default=True,
        description="share the new key with the companions now; false: only when one asks",
    )


class PhoneMessage(BaseModel):
    to: str = Field(min_length=5, max_length=64, description="a number or a JID")
    text: str = Field(min_length=1, max_length=65536)


class PhoneBurst(BaseModel):
    to: str = Field(min_length=5, max_length=64, description="a number or a JID")
    count: int = Field(ge=1, le=100_000)
    text: str = Field(default="message", min_length=1, max_length=65536)


class PlaceCall(BaseModel):
    to: str = Field(min_length=5, max_length=64, description="a number or a JID")
    video: bool = False


class SetPicture(BaseModel):
    remove: bool = Field(default=False, description="remove the picture instead of setting one")


class MinVersion(BaseModel):
    version: str | None = Field(
        default=None,
        pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,12}$",
        description="oldest web client version let in (e.g. 2.3000.1043857760); null: any",
    )


class StreamError(BaseModel):
    code: int | None = Field(default=None, ge=100, le=999)
    conflict: str | None = Field(default=None, pattern=r"^(replaced|device_removed)$")


class Fail(BaseModel):
    kind: ConnectionFault
    code: int | None = Field(
        default=None, ge=500, le=599, description="for 5xx (default 503) and failure-5xx (500)"
    )
    seconds: float | None = Field(
        default=None, gt=0, le=86400, description="stall: abort the socket after this long"
    )


class MediaFault(BaseModel):
    status: int = Field(default=500, ge=400, le=599, description="404, or a 5xx")
    count: int = Field(default=1, ge=1, le=1000, description="how many GETs answer it")


class Refuse(BaseModel):
    seconds: float = Field(gt=0, le=86400)


class Restart(BaseModel):
    down_seconds: float = Field(default=1.0, ge=0, le=3600)


class Chaos(BaseModel):
    count: int = Field(ge=1, le=100_000)
    interval: float = Field(default=1.0, gt=0, le=3600, description="mean seconds between faults")
    kinds: list[FaultKind] = Field(default_factory=lambda: list(DEFAULT_CHAOS_KINDS), min_length=1)
    seed: int | None = Field(default=None, ge=0, le=2**63)
    targets: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    stall_seconds: float = Field(default=10.0, gt=0, le=3600)
    refuse_seconds: float = Field(default=2.0, gt=0, le=3600)
    down_seconds: float = Field(default=1.0, ge=0, le=3600)
    target_wait: float = Field(default=30.0, ge=0, le=3600)


def _device_json(server: SimServer, device: Device) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "jid": str(device.jid),
        "lid": str(device.lid),
        "connected": str(device.jid) in server.network.connections,
        "pre_keys": len(device.pre_keys),
        "push_name": device.push_name,
    }


def _phone_json(server: SimServer, account: Account) -> dict[str, Any]:
    phone = account.phone
    return {
        "number": phone.number,
        "jid": str(phone.jid),
        "lid": str(phone.lid),
        "push_name": phone.push_name,
        "trusting": account.trusting,
        "devices": [_device_json(server, d) for d in account.devices.values()],
    }


def _recipient(to: str) -> Jid:
    target = to.lstrip("+")
    try:
        return Jid.parse(target) if "@" in target else Jid(target, "s.whatsapp.net")
    except ValueError as exc:
        raise HTTPException(400, f"bad recipient: {exc}") from exc


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_admin_app(server: SimServer) -> FastAPI:
    app = FastAPI(
        title="wahttp simulator admin API",
        version="1",
        docs_url=None,  # apidocs: the docs' scripts come from this process, not a CDN
        redoc_url=None,
    )
    apidocs.install(app)
    media.install(app, server.media)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "error", str(exc.detail))

    @app.exception_handler(LinkError)
    async def link_error(request: Request, exc: LinkError) -> JSONResponse:
        return _error(exc.status, "link_failed", str(exc))

    @app.exception_handler(FaultError)
    async def fault_error(request: Request, exc: FaultError) -> JSONResponse:
        return _error(exc.status, "fault_refused", str(exc))

    def account_or_404(number: str) -> Account:
        account = server.network.accounts.get(number)
        if account is None:
            raise HTTPException(404, f"no phone with number {number}")
        return account

    @app.get("/info")
    async def info() -> dict[str, str]:
        return {
            "ws_url": server.url,
            "root_key": base64.b64encode(server.root_public).decode(),
            "root_key_hex": server.root_public.hex(),
        }

    @app.post("/phones", status_code=201)
    async def create_phone(body: NewPhone) -> dict[str, Any]:
        number = body.number.lstrip("+") if body.number else None
        if number and number in server.network.accounts:
            raise HTTPException(409, f"phone {number} exists already")
        account = server.network.create_account(number, body.push_name, trusting=body.trusting)
        return _phone_json(server, account)

    @app.post("/phones/bulk", status_code=201)
    async def create_phones(body: NewPhones) -> list[dict[str, Any]]:
        """`count` new phones with free numbers in one call (benchmarks make hundreds)."""
        return [_phone_json(server, server.network.create_account()) for _ in range(body.count)]

    @app.get("/phones")
    async def list_phones() -> list[dict[str, Any]]:
        return [_phone_json(server, a) for a in server.network.accounts.values()]

    @app.get("/phones/{number}")
    async def get_phone(number: Number) -> dict[str, Any]:
        return _phone_json(server, account_or_404(number))

    @app.post("/phones/{number}/scan")
    async def scan(number: Number, body: Scan) -> dict[str, Any]:
        device = await scan_qr(server, account_or_404(number), body.qr)
        return _device_json(server, device)

    @app.post("/phones/{number}/pairing-code")
    async def pairing_code(number: Number, body: EnterCode) -> dict[str, Any]:
        """The phone's user types the code a companion shows (Linked devices > Link with number)."""
        device = await enter_code(server, account_or_404(number), body.code)
        return _device_json(server, device)

    @app.post("/phones/{number}/messages", status_code=201)
    async def phone_send(number: Number, body: PhoneMessage) -> dict[str, Any]:
        """The phone sends a text (end-to-end encrypted) to a number or JID."""
        account = account_or_404(number)
        jid = _recipient(body.to)
        try:
            item = await account.phone_peer.send_text(server.router, jid, body.text)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        return vars(item).copy()

    @app.post("/phones/{number}/contacts")
    async def phone_contact(number: Number, body: ContactName) -> dict[str, Any]:
        """The phone's user names (or removes) a contact: an app-state patch to its companions."""
        account = account_or_404(number)
        jid = str(_recipient(body.jid))
        if body.name is None:
            account.app_state.contacts.pop(jid, None)
        else:
            account.app_state.contacts[jid] = body.name
        change = appstate.contact_mutation(jid, body.name)
        versions = await appstate.apply_changes(
            server.router,
            account,
            [change],
            tamper=body.tamper,
            media=server.media,
            external=body.external,
        )
        return {"jid": jid, "name": body.name, "versions": versions}

    @app.post("/phones/{number}/chats/{jid}")
    async def phone_chat(number: Number, jid: str, body: ChatSettings) -> dict[str, Any]:
        """The phone's user archives, pins, mutes or marks a chat read: app-state patches."""
        account = account_or_404(number)
        chat = str(_recipient(jid))
        changes = appstate.chat_mutations(
            chat, archive=body.archive, pin=body.pin, mute_until=body.mute, read=body.read
        )
        if not changes:
            raise HTTPException(400, "nothing to change: give archive, pin, mute or read")
        settings = account.app_state.chats.setdefault(chat, {})
        for key in ("archive", "pin", "mute", "read"):
            if getattr(body, key) is not None:
                settings[key] = getattr(body, key)
        versions = await appstate.apply_changes(
            server.router,
            account,
            changes,
            tamper=body.tamper,
            media=server.media,
            external=body.external,
        )
        return {"jid": chat, "settings": settings, "versions": versions}

    @app.get("/phones/{number}/app-state")
    async def phone_app_state(number: Number) -> dict[str, Any]:
        """The phone's contacts, chat settings and collection versions."""
        return account_or_404(number).app_state.summary()

    @app.post("/phones/{number}/app-state/rotate-key")
    async def phone_rotate_key(number: Number, body: RotateKey | None = None) -> dict[str, Any]:
        """The phone starts a new app-state sync key (later patches use it). With share=false
        it is not shared up front: a companion must ask for it (APP_STATE_SYNC_KEY_REQUEST)."""
        account = account_or_404(number)
        key_id = account.app_state.rotate_key()
        shared = []
        if body is None or body.share:
            for device_id in sorted(account.devices):
                share = account.app_state.key_share()
                if await account.phone_peer.send_to_own_device(server.router, device_id, share):
                    shared.append(device_id)
        return {"keyId": base64.b64encode(key_id).decode(), "sharedWith": shared}

    @app.post("/phones/{number}/app-state/share-keys")
    async def phone_share_keys(number: Number) -> dict[str, Any]:
        """The phone sends every app-state key it has (earlier ones, then the current one) to
        all its companions, as if each had asked."""
        account = account_or_404(number)
        app_state = account.app_state
        ids = [*app_state.retired_keys, app_state.key_id]
        shared = []
        for device_id in sorted(account.devices):
            share = app_state.key_share(ids)
            if await account.phone_peer.send_to_own_device(server.router, device_id, share):
                shared.append(device_id)
        return {"keyIds": [base64.b64encode(k).decode() for k in ids], "sharedWith": shared}

    @app.get("/phones/{number}/app-state/key-requests")
    async def phone_key_requests(number: Number) -> list[dict[str, Any]]:
        """The app-state key requests the phone's companions sent it, oldest first."""
        return [
            {"device": device, "keyIds": [base64.b64encode(k).decode() for k in ids]}
            for device, ids in account_or_404(number).app_state.key_requests
        ]

    @app.post("/phones/{number}/privacy-tokens", status_code=201)
    async def phone_issue_token(number: Number, body: IssueToken) -> dict[str, Any]:
        """The phone issues its privacy token to an account (its devices get a notification)."""
        account = account_or_404(number)
        target = server.network.account_by_user(_recipient(body.to).user)
        if target is None or target.number == account.number:
            raise HTTPException(404, f"{body.to} is not another account on the network")
        await server.network.privacy.issue(server.router, account.number, target.number)
        return {"issuer": account.number, "holder": target.number}

    @app.post("/phones/{number}/call", status_code=201)
    async def phone_call(number: Number, body: PlaceCall) -> dict[str, Any]:
        """The phone calls an account: its linked devices get a `<call><offer>`."""
        account = account_or_404(number)
        target = server.network.account_by_user(_recipient(body.to).user)
        if target is None or target.number == account.number:
            raise HTTPException(404, f"{body.to} is not another account on the network")
        call = await ring(server, account.number, target.number, video=body.video)
        return call.to_json()

    @app.get("/phones/{number}/calls")
    async def phone_calls(number: Number) -> list[dict[str, Any]]:
        """Calls this phone placed or received, with their status (ringing, rejected)."""
        account = account_or_404(number)
        calls = server.network.calls.values()
        return [c.to_json() for c in calls if account.number in (c.caller, c.callee)]

    @app.post("/phones/{number}/picture")
    async def phone_picture(number: Number, body: SetPicture) -> dict[str, Any]:
        """The phone sets (or removes) its profile picture: its contacts' devices get a
        `picture` notification, its own companions an `account_sync` `<picture/>`."""
        return await picture_changed(server, account_or_404(number), removed=body.remove)

    @app.post("/phones/{number}/reregister")
    async def phone_reregister(number: Number) -> dict[str, Any]:
        """The phone registers again (new identity key): its contacts' devices get
        `<notification type="encrypt"><identity/>`."""
        return await reregister(server, account_or_404(number))

    @app.get("/version")
    async def get_min_version() -> dict[str, Any]:
        v = server.min_version
        return {"min": ".".join(map(str, v)) if v else None, "refused": server.outdated_refused}

    @app.put("/version")
    async def put_min_version(body: MinVersion) -> dict[str, Any]:
        """Refuse logins of older web clients with `<failure reason="405">` (client outdated)."""
        if body.version is None:
            server.min_version = None
        else:
            a, b, c = (int(p) for p in body.version.split("."))
            server.min_version = (a, b, c)
        return await get_min_version()

    @app.get("/props")
    async def get_props() -> dict[str, Any]:
        """The AB props the server answers `<iq xmlns="abt">` with (10518: privacy tokens)."""
        return props_view()

    def props_view() -> dict[str, Any]:
        tokens = server.network.privacy
        served = tokens.props_served
        return {
            "props": dict(tokens.props),
            "hash": tokens.props_hash(),
            "refresh": tokens.props_refresh,
            "served": len(served),
            "served_unchanged": sum(1 for _, _, unchanged in served if unchanged),
        }

    @app.put("/props-refresh")
    async def put_props_refresh(body: PropsRefresh) -> dict[str, Any]:
        """How often clients are told to fetch the props again (the answer's `refresh`, in
        seconds; a day by default): a connected client sees a prop change after it."""
        server.network.privacy.props_refresh = body.seconds
        return props_view()

    @app.put("/props/{code}")
    async def put_prop(
        code: Annotated[str, Path(pattern=r"^[0-9A-Za-z_]{1,64}$")], body: PropValue
    ) -> dict[str, Any]:
        """Set (or, with null, remove) one prop; clients see it at their next login or their
        next refresh (see /props-refresh)."""
        server.network.privacy.set_prop(code, body.value)
        return props_view()

    @app.post("/phones/{number}/messages/burst", status_code=201)
    async def phone_burst(number: Number, body: PhoneBurst) -> list[dict[str, Any]]:
        """The phone sends `count` texts ("<text> <i>") one after the other, as fast as the
        recipient's stream takes them; each entry has the message id and when it left (unix
        seconds, float), so a benchmark can time them end to end."""
        account = account_or_404(number)
        jid = _recipient(body.to)
        sent = []
        for i in range(body.count):
            try:
                item = await account.phone_peer.send_text(server.router, jid, f"{body.text} {i}")
            except LookupError as exc:
                raise HTTPException(404, str(exc)) from exc
            sent.append({"id": item.id, "sent_at": time.time()})
        return sent

    @app.get("/phones/{number}/messages")
    async def phone_inbox(number: Number) -> dict[str, Any]:
        """What the phone received (decrypted) and the status of what it sent."""
        peer = account_or_404(number).phone_peer
        return {
            "received": peer.inbox_json(),
            "sent": [vars(i).copy() for i in peer.sent.values()],
            "undecryptable": peer.undecryptable,
            "duplicates": peer.duplicates,
        }

    @app.post("/phones/{number}/messages/{message_id}/read")
    async def phone_read(number: Number, message_id: str) -> dict[str, bool]:
        """The phone's user opens the chat: a read receipt goes to the sender."""
        if not await account_or_404(number).phone_peer.mark_read(server.router, message_id):
            raise HTTPException(404, f"no received message {message_id}")
        return {"read": True}

    @app.delete("/phones/{number}/devices/{device_id}", status_code=204)
    async def unlink(number: Number, device_id: Annotated[int, Path(ge=1, le=99)]) -> None:
        account_or_404(number)
        if not await server.unlink(number, device_id):
            raise HTTPException(404, f"phone {number} has no device {device_id}")

    @app.post("/state/save")
    async def save_state() -> dict[str, str]:
        """Write the state file now (it is written at shutdown anyway); 409 without one."""
        if server.state_file is None:
            raise HTTPException(409, "the simulator runs without --state-file")
        return {"saved": str(await server.save_state())}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Counters: encrypted payloads per (sender, recipient, type); streams replaced (440)."""
        enc = server.router.enc_counts
        return {
            "enc": [
                {"from": f, "to": t, "type": k, "count": n} for (f, t, k), n in sorted(enc.items())
            ],
            "replaced": server.replaced,
            # Logins' backlogs (sim/offline.py); `lenient`: sent without an <offline_batch>.
            "offline": vars(server.offline_stats).copy(),
            # <ib><dirty> flags waiting, and <clean> iqs that cleared one.
            "dirty": {
                "waiting": len(server.network.dirty),
                "cleaned": server.network.cleaned,
                "last_clean": server.network.last_clean,
            },
            # "<class>[:<type>]" -> stanzas a device acked ("notification:picture": 2, ...)
            "acks": dict(sorted(server.router.acks.items())),
            "reporting_tokens": {
                k: server.router.reporting[k] for k in ("valid", "invalid", "missing")
            },
            "privacy_tokens": {
                "issued": len(server.network.privacy.issued),
                "accepted_with_token": server.network.privacy.accepted_with_token,
                "first_contacts": server.network.privacy.first_contacts,
                "refused": [
                    {"from": f, "to": t, "error": e} for f, t, e in server.network.privacy.refused
                ],
            },
        }

    @app.get("/connections")
    async def connections() -> list[dict[str, Any]]:
        return [
            {"jid": jid, "conn_id": c.conn_id, "active": c.active, "pings": c.pings}
            for jid, c in server.network.connections.items()
        ]

    @app.post("/connections/drop-all")
    async def drop_all() -> dict[str, int]:
        dropped = 0
        for jid in list(server.network.connections):
            with contextlib.suppress(FaultError):  # gone meanwhile
                await server.faults.fail(jid, "drop")
                dropped += 1
        return {"dropped": dropped}

    def connection_or_404(jid: str) -> Any:
        conn = server.connection(jid)
        if conn is None:
            raise HTTPException(404, f"{jid} is not connected")
        return conn

    @app.post("/connections/{jid}/drop")
    async def drop(jid: str) -> dict[str, bool]:
        await server.faults.fail(jid, "drop")
        return {"dropped": True}

    @app.post("/connections/{jid}/stall")
    async def stall(jid: str, seconds: float | None = Query(default=None, gt=0)) -> dict[str, bool]:
        """Stop reading and writing on this connection (the TCP link stays up, until the client
        gives up or, with `?seconds=`, the server aborts it after that long)."""
        await server.faults.fail(jid, "stall", seconds=seconds)
        return {"stalled": True}

    @app.post("/connections/{jid}/fail")
    async def fail(jid: str, body: Fail) -> dict[str, Any]:
        """One fault on one device's stream. `drop` aborts the TCP connection (client: 428);
        `stall` stops reading and writing (the client's keepalive gives up: 408; with `seconds`
        the server aborts the socket after that long: 428); `5xx` is <stream:error code=5xx>;
        `515` asks for a restart; `440` is a conflict (replaced): nothing is removed, the client
        stops; `401` is the phone unlinking the device (removed, like DELETE
        /phones/{n}/devices/{id}); `failure-5xx` is <failure reason=5xx>. `code` is what the
        client reports (null for a stall)."""
        entry = await server.faults.fail(jid, body.kind, code=body.code, seconds=body.seconds)
        return {"kind": entry.kind, "target": entry.target, "code": entry.code}

    @app.post("/connections/{jid}/ping")
    async def server_ping(jid: str) -> dict[str, bool]:
        """Send the server's own ping (urn:xmpp:ping); a live client answers it."""
        conn = connection_or_404(jid)
        ping = Node("iq", {"from": "s.whatsapp.net", "type": "get", "xmlns": "urn:xmpp:ping"})
        try:
            reply = await conn.query(ping, timeout=5)
        except TimeoutError:
            return {"answered": False}
        return {"answered": reply.attr("type") == "result"}

    @app.post("/connections/{jid}/stream-error")
    async def stream_error(jid: str, body: StreamError) -> dict[str, bool]:
        conn = connection_or_404(jid)
        child = Node("conflict", {"type": body.conflict}) if body.conflict else None
        await conn.stream_error(body.code, child)
        return {"sent": True}

    # -- server-wide faults ----------------------------------------------------------------------
    @app.get("/faults")
    async def faults() -> dict[str, Any]:
        """Counters per kind, the chaos run, the last 200 faults ({t, kind, target, source,
        code}), and whether the server listens and accepts connections."""
        return server.faults.status()

    @app.delete("/faults")
    async def reset_faults() -> dict[str, Any]:
        """Stop chaos, end a refusal and clear the counters and the log."""
        await server.faults.reset()
        return server.faults.status()

    @app.post("/faults/media")
    async def fault_media(body: MediaFault) -> dict[str, Any]:
        """The media host answers the next `count` downloads with `status` (then serves again)."""
        server.media.fail_next(body.status, body.count)
        return {"pending": list(server.media.failures)}

    @app.post("/faults/refuse")
    async def refuse(body: Refuse) -> dict[str, Any]:
        """Answer every new WebSocket upgrade with HTTP 503 for `seconds`; streams already open
        stay up. Another call replaces the deadline."""
        until = server.faults.refuse(body.seconds)
        return {"refusing": True, "seconds": body.seconds, "until": until}

    @app.delete("/faults/refuse")
    async def end_refuse() -> dict[str, bool]:
        return {"refusing": False, "was_refusing": server.faults.end_refuse()}

    @app.post("/faults/restart")
    async def restart(body: Restart | None = None) -> dict[str, Any]:
        """Restart the server as clients see it: every stream is aborted and the port closed,
        all state is kept, and the server listens on the same port after `down_seconds`."""
        down = (body or Restart()).down_seconds
        cut = await server.faults.restart(down)
        return {"restarting": True, "dropped": cut, "down_seconds": down, "ws_url": server.url}

    @app.post("/faults/chaos", status_code=202)
    async def chaos(body: Chaos) -> dict[str, Any]:
        """Inject `count` random faults of `kinds` on random connected devices (or `targets`),
        one every `interval` seconds on average (uniform in [0.5, 1.5] x interval); the run
        stops by itself once the last fault is in and the server accepts connections again."""
        plan = ChaosPlan(
            count=body.count,
            interval=body.interval,
            kinds=tuple(body.kinds),
            seed=body.seed if body.seed is not None else new_seed(),
            targets=tuple(body.targets) if body.targets is not None else None,
            stall_seconds=body.stall_seconds,
            refuse_seconds=body.refuse_seconds,
            down_seconds=body.down_seconds,
            target_wait=body.target_wait,
        )
        return server.faults.start_chaos(plan).json()

    @app.delete("/faults/chaos")
    async def stop_chaos() -> dict[str, Any]:
        stopped = await server.faults.stop_chaos()
        run = server.faults.chaos
        return {"stopped": stopped, "chaos": run.json() if run is not None else None}

    return app
