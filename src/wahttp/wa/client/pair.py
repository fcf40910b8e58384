"""Linking by QR: show refs as QR strings, then verify the phone's pair-success and sign it."""

from __future__ import annotations

import asyncio
import base64
import hmac
from typing import TYPE_CHECKING

from wahttp.wa import crypto
from wahttp.wa.auth.bufferjson import b64decode
from wahttp.wa.auth.creds import Creds, Me, SignalIdentity
from wahttp.wa.binary import Node
from wahttp.wa.client.events import PairSuccess, QRCode
from wahttp.wa.close import CloseCode
from wahttp.wa.errors import PairingError
from wahttp.wa.jid import S_WHATSAPP_NET
from wahttp.wa.proto import adv_pb2

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

ADV_ACCOUNT_SIG_PREFIX = b"\x06\x00"
ADV_DEVICE_SIG_PREFIX = b"\x06\x01"
ADV_HOSTED_ACCOUNT_SIG_PREFIX = b"\x06\x05"
# WhatsApp Web (and Baileys 7) put the fields behind this link so phone cameras open WhatsApp.
QR_URL_PREFIX = "https://wa.me/settings/linked_devices#"
# Companion platform id in the QR (Baileys: Chrome = 1).
PLATFORM_ID = "1"


def qr_string(ref: str, creds: Creds) -> str:
    """The text a QR code encodes: ref, noise key, identity key, ADV secret, platform id."""
    parts = [
        ref,
        base64.b64encode(creds.noise_key.public).decode(),
        base64.b64encode(creds.signed_identity_key.public).decode(),
        creds.adv_secret_key,
        PLATFORM_ID,
    ]
    return QR_URL_PREFIX + ",".join(parts)


async def on_pair_device(client: Client, node: Node, pair_device: Node) -> None:
    await client.send_node(
        Node("iq", {"to": S_WHATSAPP_NET, "type": "result", "id": node.attr("id") or ""})
    )
    refs = [r.content_bytes() or b"" for r in pair_device.children("ref")]
    client.spawn(_show_qrs(client, [r.decode("utf-8", "replace") for r in refs]), "wa-qr")


async def _show_qrs(client: Client, refs: list[str]) -> None:
    timeout = client.config.qr_first_timeout
    for ref in refs:
        await client.emit(QRCode(qr_string(ref, client.creds)))
        await asyncio.sleep(timeout)
        timeout = client.config.qr_next_timeout
    await client.close(CloseCode.QR_ENDED, "QR refs attempts ended")


def verify_pair_success(
    creds: Creds, device_identity: bytes
) -> tuple[adv_pb2.ADVSignedDeviceIdentity, adv_pb2.ADVDeviceIdentity]:
    """Check the HMAC and the account signature; return the identity with our device signature."""
    try:
        wrapper = adv_pb2.ADVSignedDeviceIdentityHMAC.FromString(device_identity)
        hosted = wrapper.accountType == adv_pb2.HOSTED
        prefix = ADV_HOSTED_ACCOUNT_SIG_PREFIX if hosted else b""
        expected = crypto.hmac_sha256(b64decode(creds.adv_secret_key), prefix + wrapper.details)
        if not hmac.compare_digest(expected, wrapper.hmac):
            raise PairingError("pair-success HMAC does not match our ADV secret")
        account = adv_pb2.ADVSignedDeviceIdentity.FromString(wrapper.details)
        identity = adv_pb2.ADVDeviceIdentity.FromString(account.details)
    except Exception as exc:  # protobuf raises its own DecodeError
        if isinstance(exc, PairingError):
            raise
        raise PairingError("malformed pair-success device identity") from exc
    own_pub = creds.signed_identity_key.public
    sig_prefix = (
        ADV_HOSTED_ACCOUNT_SIG_PREFIX
        if identity.deviceType == adv_pb2.HOSTED
        else ADV_ACCOUNT_SIG_PREFIX
    )
    message = sig_prefix + account.details + own_pub
    if not crypto.verify(account.accountSignatureKey, message, account.accountSignature):
        raise PairingError("the account signature on our device identity is invalid")
    device_msg = ADV_DEVICE_SIG_PREFIX + account.details + own_pub + account.accountSignatureKey
    account.deviceSignature = creds.signed_identity_key.sign(device_msg)
    return account, identity


def _reply(node: Node, account: adv_pb2.ADVSignedDeviceIdentity, key_index: int) -> Node:
    stripped = adv_pb2.ADVSignedDeviceIdentity()
    stripped.CopyFrom(account)
    stripped.ClearField("accountSignatureKey")
    identity = Node("device-identity", {"key-index": str(key_index)}, stripped.SerializeToString())
    return Node(
        "iq",
        {"to": S_WHATSAPP_NET, "type": "result", "id": node.attr("id") or ""},
        [Node("pair-device-sign", {}, [identity])],
    )


async def on_pair_success(client: Client, node: Node, success: Node) -> None:
    identity_node = success.child("device-identity")
    device = success.child("device")
    if identity_node is None or device is None or not device.attr("jid"):
        await client.close(CloseCode.BAD_SESSION, "pair-success without device-identity or device")
        return
    creds = client.creds
    try:
        account, identity = verify_pair_success(creds, identity_node.content_bytes() or b"")
    except PairingError as exc:
        client.log.warning("pairing refused: %s", exc)
        await client.close(CloseCode.LOGGED_OUT, f"pairing failed: {exc}")
        return
    jid, lid = device.attr("jid") or "", device.attr("lid")
    platform = success.child("platform")
    creds.me = Me(id=jid, lid=lid, name=creds.me.name if creds.me else None)
    creds.account = account
    creds.platform = platform.attr("name") if platform is not None else None
    creds.signal_identities.append(
        SignalIdentity(lid or jid, 0, crypto.with_key_type(account.accountSignatureKey))
    )
    creds.pairing_code = None
    # Durable before the phone is told: a crash now must not lose a link the phone believes in.
    await client.save_creds()
    await client.send_node(_reply(node, account, identity.keyIndex))
    client.log.info("paired as %s", jid)
    await client.emit(PairSuccess(jid, lid, creds.platform))
