"""The simulator's admin HTTP API: make phones, scan QRs, unlink devices, break connections."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

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


class Scan(BaseModel):
    qr: str = Field(min_length=1, max_length=4096)


class EnterCode(BaseModel):
    code: str = Field(min_length=8, max_length=12, pattern=r"^[0-9A-Za-z\- ]+$")


class PhoneMessage(BaseModel):
    to: str = Field(min_length=5, max_length=64, description="a number or a JID")
    text: str = Field(min_length=1, max_length=65536)


class StreamError(BaseModel):
    code: int | None = Field(default=None, ge=100, le=999)
    conflict: str | None = Field(default=None, pattern=r"^(replaced|device_removed)$")


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
        "devices": [_device_json(server, d) for d in account.devices.values()],
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_admin_app(server: SimServer) -> FastAPI:
    app = FastAPI(title="wahttp simulator admin API", version="1")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "error", str(exc.detail))

    @app.exception_handler(LinkError)
    async def link_error(request: Request, exc: LinkError) -> JSONResponse:
        return _error(exc.status, "link_failed", str(exc))

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
        return _phone_json(server, server.network.create_account(number, body.push_name))

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
        target = body.to.lstrip("+")
        try:
            jid = Jid.parse(target) if "@" in target else Jid(target, "s.whatsapp.net")
        except ValueError as exc:
            raise HTTPException(400, f"bad recipient: {exc}") from exc
        try:
            item = await account.phone_peer.send_text(server.router, jid, body.text)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        return vars(item).copy()

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

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Counters: encrypted payloads routed per (sender, recipient, type)."""
        enc = server.router.enc_counts
        return {
            "enc": [
                {"from": f, "to": t, "type": k, "count": n} for (f, t, k), n in sorted(enc.items())
            ]
        }

    @app.get("/connections")
    async def connections() -> list[dict[str, Any]]:
        return [
            {"jid": jid, "conn_id": c.conn_id, "active": c.active, "pings": c.pings}
            for jid, c in server.network.connections.items()
        ]

    @app.post("/connections/drop-all")
    async def drop_all() -> dict[str, int]:
        conns = list(server.network.connections.values())
        for conn in conns:
            conn.abort()
        return {"dropped": len(conns)}

    def connection_or_404(jid: str) -> Any:
        conn = server.connection(jid)
        if conn is None:
            raise HTTPException(404, f"{jid} is not connected")
        return conn

    @app.post("/connections/{jid}/drop")
    async def drop(jid: str) -> dict[str, bool]:
        connection_or_404(jid).abort()
        return {"dropped": True}

    @app.post("/connections/{jid}/stall")
    async def stall(jid: str) -> dict[str, bool]:
        """Stop reading and writing on this connection (the TCP link stays up)."""
        connection_or_404(jid).stalled = True
        return {"stalled": True}

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

    return app
