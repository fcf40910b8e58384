"""Pairing codes on the simulated network: the companion's hello, the phone typing the code.

The server only relays; the phone checks the code the only way a phone can: the key bundle the
companion sends back decrypts only if both sides derived the same ephemeral secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from wahttp.sim import iq as iq_util
from wahttp.sim.linking import LinkError, link
from wahttp.sim.network import Account, Device
from wahttp.wa import crypto
from wahttp.wa.binary import Node
from wahttp.wa.client.pair_code import ADV_SECRET_INFO, BUNDLE_INFO, unwrap_public, wrap_public
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import PairingError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.server import SimServer

FINISH_TIMEOUT = 20.0


@dataclass
class CodeRequest:
    """A companion waiting for its number's phone to enter the code it shows."""

    conn: ServerConnection
    number: str
    ref: bytes
    wrapped_companion_ephemeral: bytes
    finish: asyncio.Future[Node] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _child_bytes(node: Node, tag: str) -> bytes:
    child = node.child(tag)
    data = child.content_bytes() if child is not None else None
    if not data:
        raise LinkError(400, f"missing {tag}")
    return data


async def on_companion_reg(server: SimServer, conn: ServerConnection, node: Node) -> Node | None:
    reg = node.child("link_code_companion_reg")
    assert reg is not None
    stage = reg.attr("stage")
    if conn.registration is None:
        return iq_util.error(node, 400, "bad-request")
    if stage == "companion_hello":
        return _hello(server, conn, node, reg)
    if stage == "companion_finish":
        request = server.network.code_requests.get(conn.conn_id)
        if request is None:
            return iq_util.error(node, 404, "item-not-found")
        if not request.finish.done():
            request.finish.set_result(node)
        return None  # answered by the phone's side once it has checked the bundle
    return iq_util.error(node, 400, "bad-request")


def _hello(server: SimServer, conn: ServerConnection, node: Node, reg: Node) -> Node:
    try:
        jid = Jid.parse(reg.attr("jid") or "")
        wrapped = _child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
        noise = _child_bytes(reg, "companion_server_auth_key_pub")
    except (ValueError, LinkError):
        return iq_util.error(node, 400, "bad-request")
    if len(wrapped) != 80 or noise != conn.client_static or not jid.is_pn():
        return iq_util.error(node, 400, "bad-request")
    ref = os.urandom(16).hex().encode()
    server.network.code_requests[conn.conn_id] = CodeRequest(conn, jid.user, ref, wrapped)
    reply = Node("link_code_companion_reg", {}, [Node("link_code_pairing_ref", {}, ref)])
    return iq_util.result(node, [reply])


def _pending_for(server: SimServer, number: str) -> CodeRequest:
    for request in server.network.code_requests.values():
        if request.number == number and not request.conn.closed.is_set():
            return request
    raise LinkError(404, f"no device is waiting for a pairing code for {number}")


async def enter_code(server: SimServer, account: Account, code: str) -> Device:
    """The phone's user types `code`: run the phone's half and link on success."""
    request = _pending_for(server, account.number)
    code = code.replace("-", "").replace(" ", "").upper()
    if len(code) != 8:
        raise LinkError(400, "a pairing code has 8 characters")
    companion_ephemeral = unwrap_public(code, request.wrapped_companion_ephemeral)
    ephemeral = KeyPair.generate()
    request.finish = asyncio.get_running_loop().create_future()
    await _send_primary_hello(request, account, ephemeral, code)
    try:
        finish_iq = await asyncio.wait_for(asyncio.shield(request.finish), FINISH_TIMEOUT)
    except TimeoutError as exc:
        raise LinkError(504, "the device did not answer the code prompt") from exc
    try:
        adv_secret = _check_bundle(account, ephemeral, companion_ephemeral, finish_iq, request)
    except PairingError as exc:
        await request.conn.send_node(iq_util.error(finish_iq, 401, "not-authorized"))
        raise LinkError(400, "wrong pairing code") from exc
    await request.conn.send_node(iq_util.result(finish_iq))
    server.network.code_requests.pop(request.conn.conn_id, None)
    return await link(server, account, request.conn, adv_secret)


async def _send_primary_hello(
    request: CodeRequest, account: Account, ephemeral: KeyPair, code: str
) -> None:
    reg = Node(
        "link_code_companion_reg",
        {"stage": "primary_hello"},
        [
            Node("link_code_pairing_ref", {}, request.ref),
            Node("primary_identity_pub", {}, account.phone.identity.public),
            Node(
                "link_code_pairing_wrapped_primary_ephemeral_pub",
                {},
                wrap_public(code, ephemeral.public),
            ),
        ],
    )
    notification = Node(
        "notification",
        {
            "from": S_WHATSAPP_NET,
            "type": "link_code_companion_reg",
            "id": request.conn.new_id(),
            "t": str(int(time.time())),
        },
        [reg],
    )
    await request.conn.send_node(notification)


def _check_bundle(
    account: Account,
    ephemeral: KeyPair,
    companion_ephemeral: bytes,
    finish_iq: Node,
    request: CodeRequest,
) -> bytes:
    reg = finish_iq.child("link_code_companion_reg")
    if reg is None:
        raise PairingError("companion_finish without its payload")
    try:
        bundle = _child_bytes(reg, "link_code_pairing_wrapped_key_bundle")
        companion_identity = _child_bytes(reg, "companion_identity_public")
        shared = ephemeral.dh(companion_ephemeral)
    except (LinkError, ValueError) as exc:
        raise PairingError("bad companion_finish") from exc
    if len(bundle) < 32 + 12 + 16 + 96:
        raise PairingError("key bundle too short")
    key = crypto.hkdf(shared, 32, salt=bundle[:32], info=BUNDLE_INFO)
    try:
        plain = crypto.aes_gcm_decrypt(key, bundle[32:44], bundle[44:], b"")
    except InvalidTag as exc:
        raise PairingError("key bundle does not decrypt: wrong code") from exc
    identity, primary, random = plain[:32], plain[32:64], plain[64:96]
    registration = request.conn.registration
    if primary != account.phone.identity.public or identity != companion_identity:
        raise PairingError("key bundle names other identities")
    if registration is None or registration.eIdent != identity:
        raise PairingError("key bundle identity is not the registering device's")
    identity_shared = account.phone.identity.dh(identity)
    return crypto.hkdf(shared + identity_shared + random, 32, info=ADV_SECRET_INFO)


def forget(server: SimServer, conn: ServerConnection) -> None:
    request = server.network.code_requests.pop(conn.conn_id, None)
    if request is not None and not request.finish.done():
        with contextlib.suppress(asyncio.InvalidStateError):
            request.finish.cancel()
