"""The simulator's state on disk (`wahttp sim --state-file`): keys, accounts, devices, the phones'
Signal state, and every stanza still waiting for a device, so the sandbox survives a restart.

The privacy side keeps the issued-token table and the AB props (a restarted simulator still
accepts the tokens it issued, whose MACs come from the root key, and knows which it issued).
One JSON file, written atomically (temp file + rename, mode 0600). Bytes are base64 strings;
the phones' auth stores keep Baileys' BufferJSON shape (`wa/auth/bufferjson.py`). Live
connections, pending registrations and fault injection are not kept.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wahttp.sim.network import Account, Device, SignedPreKeyRecord
from wahttp.sim.phone import Phone
from wahttp.sim.phone_peer import InboxItem, SentItem
from wahttp.sim.routing import Mailbox
from wahttp.wa.auth import bufferjson
from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.signal_store import SignalStore
from wahttp.wa.auth.store import MemoryAuthStore
from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.crypto import KeyPair

if TYPE_CHECKING:
    from wahttp.sim.privacy import PrivacyTokens
    from wahttp.sim.server import SimKeys, SimServer

VERSION = 1


class StateError(Exception):
    """The state file cannot be read as simulator state."""


def _b64(data: bytes) -> str:
    return bufferjson.b64encode(data)


def _unb64(text: str) -> bytes:
    return bufferjson.b64decode(text)


def _node(node: Node) -> str:
    return _b64(encode_node(node))


def _unnode(text: str) -> Node:
    return decode_node(_unb64(text))


# -- saving ------------------------------------------------------------------------------------
async def snapshot(server: SimServer) -> dict[str, Any]:
    """Everything worth keeping, as JSON-able data."""
    network, router = server.network, server.router
    return {
        "version": VERSION,
        "keys": {
            "root": _b64(server.keys.root.private),
            "static": _b64(server.keys.static.private),
        },
        "accounts": [await _account(a) for a in network.accounts.values()],
        "router": {
            "mailboxes": [
                {
                    "number": number,
                    "device": device_id,
                    "pending": [_node(n) for n in box.pending.values()],
                    "queue": [_node(n) for n in box.queue],
                }
                for (number, device_id), box in router.mailboxes.items()
                if box.pending or box.queue
            ],
            "origins": [[mid, key[0], key[1]] for mid, key in router.origins.items()],
            "contacts": {number: sorted(peers) for number, peers in router.contacts.items()},
            "enc_counts": [[f, t, k, n] for (f, t, k), n in router.enc_counts.items()],
        },
        "privacy": _privacy(network.privacy),
    }


def _privacy(tokens: PrivacyTokens) -> dict[str, Any]:
    """The issued-token table (which tokens the server handed out, and when) and the AB props.
    The tokens themselves are not kept: they are recomputed from the root key."""
    return {
        "issued": [[issuer, holder, t] for (issuer, holder), t in sorted(tokens.issued.items())],
        "props": dict(tokens.props),
        "props_refresh": tokens.props_refresh,
    }


def _restore_privacy(tokens: PrivacyTokens, saved: dict[str, Any] | None) -> None:
    """Absent in a state file written before the table was kept: nothing issued, defaults."""
    if saved is None:
        return
    tokens.issued = {(str(i), str(h)): int(t) for i, h, t in saved["issued"]}
    tokens.props = {str(k): str(v) for k, v in saved["props"].items()}
    tokens.props_refresh = int(saved["props_refresh"])


async def _account(account: Account) -> dict[str, Any]:
    phone, peer = account.phone, account.phone_peer
    return {
        "phone": {
            "number": phone.number,
            "lid_user": phone.lid_user,
            "push_name": phone.push_name,
            "identity": _b64(phone.identity.private),
            "registration_id": phone.registration_id,
            "raw_id": phone.raw_id,
            "next_key_index": phone.next_key_index,
        },
        "next_device_id": account.next_device_id,
        "devices": [_device(d) for d in account.devices.values()],
        "peer": {
            "creds": bufferjson.to_json(peer.creds.to_json()),
            "keys": bufferjson.to_json(await peer.store.all_keys()),
            "public_pre_keys": {str(k): _b64(v) for k, v in peer.public_pre_keys.items()},
            "next_pre_key": peer.next_pre_key,
            "inbox": [vars(i).copy() for i in peer.inbox],
            "sent": [vars(i).copy() for i in peer.sent.values()],
            "undecryptable": peer.undecryptable,
        },
    }


def _device(device: Device) -> dict[str, Any]:
    spk = device.signed_pre_key
    return {
        "device_id": device.device_id,
        "lid_user": device.lid_user,
        "noise_public": _b64(device.noise_public),
        "identity_public": _b64(device.identity_public),
        "registration_id": device.registration_id,
        "signed_pre_key": {
            "key_id": spk.key_id,
            "public": _b64(spk.public),
            "signature": _b64(spk.signature),
        },
        "key_index": device.key_index,
        "pre_keys": {str(k): _b64(v) for k, v in device.pre_keys.items()},
        "push_name": device.push_name,
    }


async def save_state(server: SimServer, path: Path) -> None:
    """Write the state atomically: a reader never sees a half-written file."""
    data = json.dumps(await snapshot(server), separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


# -- loading -----------------------------------------------------------------------------------
def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when the file does not exist yet."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StateError(f"{path} is not simulator state of version {VERSION}")
    return data


def state_keys(data: dict[str, Any]) -> SimKeys:
    from wahttp.sim.server import SimKeys

    keys = data["keys"]
    return SimKeys(
        KeyPair.from_private(_unb64(keys["root"])), KeyPair.from_private(_unb64(keys["static"]))
    )


async def restore_state(server: SimServer, data: dict[str, Any]) -> None:
    """Load saved accounts, devices, phones and mailboxes into a server that has none yet."""
    network, router = server.network, server.router
    if network.accounts:
        raise StateError("the simulator has accounts already")
    try:
        for item in data["accounts"]:
            account = await _restore_account(item)
            network.accounts[account.number] = account
            network.by_lid[account.phone.lid_user] = account.number
        saved = data["router"]
        for box in saved["mailboxes"]:
            mailbox = Mailbox()
            for text in box["pending"]:
                mailbox.hold(_unnode(text))
            mailbox.queue = [_unnode(text) for text in box["queue"]]
            router.mailboxes[(str(box["number"]), int(box["device"]))] = mailbox
        router.origins = OrderedDict((str(m), (str(n), int(d))) for m, n, d in saved["origins"])
        router.contacts = {str(n): set(peers) for n, peers in saved["contacts"].items()}
        for f, t, k, n in saved["enc_counts"]:
            router.enc_counts[(f, t, k)] = int(n)
        _restore_privacy(network.privacy, data.get("privacy"))
    except (KeyError, TypeError, ValueError) as exc:
        network.accounts.clear()
        network.by_lid.clear()
        network.privacy.issued.clear()
        raise StateError(f"malformed simulator state: {exc!r}") from exc


async def _restore_account(item: dict[str, Any]) -> Account:
    p = item["phone"]
    phone = Phone(
        number=str(p["number"]),
        lid_user=str(p["lid_user"]),
        push_name=str(p["push_name"]),
        identity=KeyPair.from_private(_unb64(p["identity"])),
        registration_id=int(p["registration_id"]),
        raw_id=int(p["raw_id"]),
        next_key_index=int(p["next_key_index"]),
    )
    account = Account(phone, next_device_id=int(item["next_device_id"]))
    for d in item["devices"]:
        device = _restore_device(phone.number, d)
        account.devices[device.device_id] = device
    saved = item["peer"]
    peer = account.phone_peer
    peer.creds = Creds.from_json(bufferjson.from_json(saved["creds"]))
    peer.store = MemoryAuthStore()
    await peer.store.set(bufferjson.from_json(saved["keys"]))
    peer.ss = SignalStore(peer.store, peer.creds)
    peer.public_pre_keys = {int(k): _unb64(v) for k, v in saved["public_pre_keys"].items()}
    peer.next_pre_key = int(saved["next_pre_key"])
    peer.inbox = [InboxItem(**i) for i in saved["inbox"]]
    peer.sent = {i["id"]: SentItem(**i) for i in saved["sent"]}
    peer.undecryptable = int(saved["undecryptable"])
    return account


def _restore_device(number: str, d: dict[str, Any]) -> Device:
    spk = d["signed_pre_key"]
    return Device(
        number=number,
        device_id=int(d["device_id"]),
        lid_user=str(d["lid_user"]),
        noise_public=_unb64(d["noise_public"]),
        identity_public=_unb64(d["identity_public"]),
        registration_id=int(d["registration_id"]),
        signed_pre_key=SignedPreKeyRecord(
            int(spk["key_id"]), _unb64(spk["public"]), _unb64(spk["signature"])
        ),
        key_index=int(d["key_index"]),
        pre_keys={int(k): _unb64(v) for k, v in d["pre_keys"].items()},
        push_name=d["push_name"],
    )
