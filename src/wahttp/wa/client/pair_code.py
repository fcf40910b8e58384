"""Linking with a pairing code ("link with phone number"): companion_hello, then companion_finish.

The user types the 8-character code on the phone. Code and ephemeral key never leave in clear:
the ephemeral public key travels AES-CTR-wrapped under PBKDF2(code), and the key bundle under a
key derived from the two ephemerals. pair-success then follows as for QR (see pair.py).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from wahttp.wa import crypto
from wahttp.wa.auth.bufferjson import b64encode
from wahttp.wa.auth.creds import Creds, Me
from wahttp.wa.binary import Node
from wahttp.wa.client.ib import ack_for
from wahttp.wa.errors import PairingError, WAError
from wahttp.wa.jid import S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

CROCKFORD = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
PBKDF2_ITERATIONS = 2 << 16  # 131072
BUNDLE_INFO = b"link_code_pairing_key_bundle_encryption_key"
ADV_SECRET_INFO = b"adv_secret"
PLATFORM_DISPLAY = "Chrome (Mac OS)"
PLATFORM_ID = "1"
_NUMBER = re.compile(r"^[1-9]\d{6,14}$")


def crockford(data: bytes) -> str:
    """Base32 with WhatsApp's alphabet (no 0, O, I, U): 5 bytes give 8 characters."""
    bits, value, out = 0, 0, []
    for byte in data:
        value = (value << 8) | byte
        bits += 8
        while bits >= 5:
            out.append(CROCKFORD[(value >> (bits - 5)) & 31])
            bits -= 5
    if bits:
        out.append(CROCKFORD[(value << (5 - bits)) & 31])
    return "".join(out)


def new_code() -> str:
    return crockford(os.urandom(5))


def normalize_number(number: str) -> str:
    """Digits of an international number (E.164 without '+'); ValueError saying why otherwise."""
    digits = re.sub(r"[\s\-().]", "", number).removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("a phone number has digits only (with an optional leading +)")
    if not _NUMBER.match(digits):
        raise ValueError("a phone number has 7 to 15 digits with its country code, no leading 0")
    return digits


def code_key(code: str, salt: bytes) -> bytes:
    return crypto.pbkdf2_sha256(code.encode(), salt, PBKDF2_ITERATIONS, 32)


def wrap_public(code: str, public: bytes) -> bytes:
    """salt32 + iv16 + AES-CTR(PBKDF2(code, salt), iv, public)."""
    salt, iv = os.urandom(32), os.urandom(16)
    return salt + iv + crypto.aes_ctr(code_key(code, salt), iv, public)


def unwrap_public(code: str, wrapped: bytes) -> bytes:
    if len(wrapped) != 80:
        raise PairingError("a wrapped ephemeral key has 80 bytes")
    return crypto.aes_ctr(code_key(code, wrapped[:32]), wrapped[32:48], wrapped[48:80])


def companion_hello(client: Client, code: str, number: str) -> Node:
    creds = client.creds
    children = [
        Node(
            "link_code_pairing_wrapped_companion_ephemeral_pub",
            {},
            wrap_public(code, creds.pairing_ephemeral_key.public),
        ),
        Node("companion_server_auth_key_pub", {}, creds.noise_key.public),
        Node("companion_platform_id", {}, PLATFORM_ID.encode()),
        Node("companion_platform_display", {}, PLATFORM_DISPLAY.encode()),
        Node("link_code_pairing_nonce", {}, b"0"),
    ]
    reg = Node(
        "link_code_companion_reg",
        {
            "jid": str(Jid(number, S_WHATSAPP_NET)),
            "stage": "companion_hello",
            "should_show_push_notification": "true",
        },
        children,
    )
    return Node("iq", {"to": S_WHATSAPP_NET, "type": "set", "xmlns": "md"}, [reg])


async def request_pairing_code(client: Client, phone_number: str) -> str:
    """Ask the server to push a code prompt to the phone; returns the code to type there."""
    number = normalize_number(phone_number)
    creds = client.creds
    if creds.is_linked:
        raise PairingError("this device is linked already")
    if not client.connected:
        raise WAError("not connected: pairing codes are requested on an open registration stream")
    code = new_code()
    creds.pairing_code = code
    creds.me = Me(id=str(Jid(number, S_WHATSAPP_NET)), name="~")
    await client.save_creds()
    await client.query(companion_hello(client, code, number))
    client.log.info("pairing code requested")
    return code


def key_bundle(creds: Creds, shared: bytes, primary_identity: bytes) -> tuple[bytes, bytes]:
    """The encrypted key bundle for companion_finish, and the ADV secret both sides derive."""
    random = os.urandom(32)
    salt, iv = os.urandom(32), os.urandom(12)
    key = crypto.hkdf(shared, 32, salt=salt, info=BUNDLE_INFO)
    plain = creds.signed_identity_key.public + primary_identity + random
    bundle = salt + iv + crypto.aes_gcm_encrypt(key, iv, plain, b"")
    identity_shared = creds.signed_identity_key.dh(primary_identity)
    adv = crypto.hkdf(shared + identity_shared + random, 32, info=ADV_SECRET_INFO)
    return bundle, adv


def _child_bytes(node: Node, tag: str) -> bytes:
    child = node.child(tag)
    data = child.content_bytes() if child is not None else None
    if not data:
        raise PairingError(f"primary_hello without {tag}")
    return data


async def on_primary_hello(client: Client, node: Node) -> None:
    """The phone accepted the code: finish our half of the exchange."""
    try:
        await _finish(client, node)
    finally:
        await client.send_node(ack_for(node))


async def _finish(client: Client, node: Node) -> None:
    reg = node.child("link_code_companion_reg")
    creds = client.creds
    if reg is None or creds.pairing_code is None or creds.me is None:
        client.log.warning("unexpected link-code notification ignored")
        return
    ref = _child_bytes(reg, "link_code_pairing_ref")
    primary_identity = _child_bytes(reg, "primary_identity_pub")
    wrapped = _child_bytes(reg, "link_code_pairing_wrapped_primary_ephemeral_pub")
    primary_ephemeral = unwrap_public(creds.pairing_code, wrapped)
    try:
        shared = creds.pairing_ephemeral_key.dh(primary_ephemeral)
        bundle, adv = key_bundle(creds, shared, primary_identity)
    except ValueError as exc:  # a low-order key from a forged notification
        raise PairingError("invalid primary keys") from exc
    creds.adv_secret_key = b64encode(adv)
    await client.save_creds()
    finish = Node(
        "link_code_companion_reg",
        {"jid": creds.me.id, "stage": "companion_finish"},
        [
            Node("link_code_pairing_wrapped_key_bundle", {}, bundle),
            Node("companion_identity_public", {}, creds.signed_identity_key.public),
            Node("link_code_pairing_ref", {}, ref),
        ],
    )
    iq = Node("iq", {"to": S_WHATSAPP_NET, "type": "set", "xmlns": "md"}, [finish])
    client.spawn(client.query(iq), "wa-link-code-finish")
