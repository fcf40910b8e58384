"""Linking companions on the simulated server: QR refs for new devices, then pair-success."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wahttp.sim.network import Account, Device, SignedPreKeyRecord
from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)
QR_URL_PREFIX = "https://wa.me/settings/linked_devices#"
PAIR_REPLY_TIMEOUT = 20.0


class LinkError(Exception):
    """Linking refused; `status` is the HTTP status the admin API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class QRData:
    ref: str
    noise_public: bytes
    identity_public: bytes
    adv_secret: bytes


def parse_qr(text: str) -> QRData:
    body = text.strip().removeprefix(QR_URL_PREFIX)
    parts = body.split(",")
    if len(parts) < 4:
        raise LinkError(400, "not a WhatsApp linking QR (expected ref,noise,identity,secret,...)")
    try:
        noise, identity, secret = (base64.b64decode(p, validate=True) for p in parts[1:4])
    except (binascii.Error, ValueError) as exc:
        raise LinkError(400, "QR fields are not base64") from exc
    if len(noise) != 32 or len(identity) != 32 or len(secret) != 32:
        raise LinkError(400, "QR keys must be 32 bytes each")
    return QRData(parts[0], noise, identity, secret)


async def start_registration(server: SimServer, conn: ServerConnection) -> None:
    """A new companion connected: give it QR refs and wait for a phone to scan one."""
    conn.registration = conn.payload.devicePairingData
    refs = conn.new_refs()
    for ref in refs:
        server.network.registrations[ref] = conn
    iq = Node(
        "iq",
        {"from": S_WHATSAPP_NET, "type": "set", "id": conn.new_id(), "xmlns": "md"},
        [Node("pair-device", {}, [Node("ref", {}, r.encode()) for r in refs])],
    )
    await conn.send_node(iq)


async def scan_qr(server: SimServer, account: Account, qr: str) -> Device:
    """The phone scans a QR: find the waiting companion and link it."""
    data = parse_qr(qr)
    conn = server.network.registrations.get(data.ref)
    if conn is None or conn.closed.is_set():
        raise LinkError(410, "that QR is unknown or expired")
    reg = conn.registration
    if reg is None or reg.eIdent != data.identity_public or conn.client_static != data.noise_public:
        raise LinkError(400, "the QR's keys do not belong to the waiting device")
    return await link(server, account, conn, data.adv_secret)


async def link(
    server: SimServer, account: Account, conn: ServerConnection, adv_secret: bytes
) -> Device:
    """Send pair-success, check the companion's signature, record the device, restart (515)."""
    reg = conn.registration
    if reg is None:
        raise LinkError(409, "the connection is not registering a new device")
    device_identity, key_index = account.phone.sign_companion(reg.eIdent, adv_secret)
    device_id = account.next_device_id
    account.next_device_id += 1
    phone = account.phone
    jid, lid = f"{phone.number}:{device_id}@s.whatsapp.net", f"{phone.lid_user}:{device_id}@lid"
    success = Node(
        "pair-success",
        {},
        [
            Node("device-identity", {}, device_identity),
            Node("platform", {"name": "android"}),
            Node("device", {"jid": jid, "lid": lid}),
        ],
    )
    iq = Node("iq", {"from": S_WHATSAPP_NET, "type": "set", "id": conn.new_id()}, [success])
    try:
        reply = await conn.query(iq, PAIR_REPLY_TIMEOUT)
    except (TimeoutError, asyncio.CancelledError) as exc:
        raise LinkError(504, "the device did not confirm the pairing") from exc
    _check_reply(account, reg.eIdent, reply)
    device = Device(
        number=phone.number,
        device_id=device_id,
        lid_user=phone.lid_user,
        noise_public=conn.client_static,
        identity_public=reg.eIdent,
        registration_id=int.from_bytes(reg.eRegid, "big"),
        signed_pre_key=SignedPreKeyRecord(
            int.from_bytes(reg.eSkeyId, "big"), reg.eSkeyVal, reg.eSkeySig
        ),
        key_index=key_index,
    )
    server.network.add_device(account, device)
    log.info("linked %s", jid)
    await server.router.device_changed(phone.number, device_id, "add")
    await conn.stream_error(515)
    return device


def _check_reply(account: Account, identity: bytes, reply: Node) -> None:
    sign = reply.child("pair-device-sign")
    signed = sign.child("device-identity") if sign is not None else None
    blob = signed.content_bytes() if signed is not None else None
    if reply.attr("type") != "result" or blob is None:
        raise LinkError(502, "the device refused the pairing")
    if not account.phone.check_device_signature(identity, blob):
        raise LinkError(502, "the device's signature over its identity is invalid")
