"""Small client pieces: close-code mapping, payload builders, config from the environment."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest

from wahttp.wa.auth import Me, MemoryAuthStore, new_creds
from wahttp.wa.binary import Node
from wahttp.wa.certs import WA_ROOT_PUBLIC_KEY
from wahttp.wa.client.client import Client
from wahttp.wa.client.config import DEFAULT_URL, ClientConfig
from wahttp.wa.client.ib import ack_for
from wahttp.wa.client.payload import login_payload, payload_for, registration_payload
from wahttp.wa.client.prekeys import generate
from wahttp.wa.client.stream import stream_error_code
from wahttp.wa.proto import client_payload_pb2 as cp


@pytest.mark.parametrize(
    ("node", "code"),
    [
        (Node("stream:error", {"code": "515"}), 515),
        (Node("stream:error", {"code": "503"}), 503),
        (Node("stream:error", {}, [Node("conflict", {"type": "replaced"})]), 440),
        (
            Node("stream:error", {"code": "401"}, [Node("conflict", {"type": "device_removed"})]),
            401,
        ),
        (Node("stream:error", {}, [Node("xml-not-well-formed", {})]), 500),
        (Node("stream:error", {}), 500),
    ],
)
def test_stream_error_codes(node: Node, code: int) -> None:
    assert stream_error_code(node)[0] == code


def test_registration_payload_carries_our_keys() -> None:
    creds, cfg = new_creds(), ClientConfig()
    p = cp.ClientPayload.FromString(registration_payload(creds, cfg))
    d = p.devicePairingData
    assert not p.passive and not p.HasField("username")
    assert d.eRegid == creds.registration_id.to_bytes(4, "big") and d.eKeytype == b"\x05"
    assert d.eIdent == creds.signed_identity_key.public
    assert d.eSkeyId == b"\x00\x00\x01" and d.eSkeySig == creds.signed_pre_key.signature
    assert d.buildHash == hashlib.md5(b"2.3000.1043857760").digest()
    props = cp.DeviceProps.FromString(d.deviceProps)
    assert props.os == "Mac OS" and props.platformType == cp.DeviceProps.CHROME
    assert p.userAgent.platform == cp.ClientPayload.UserAgent.WEB


def test_login_payload_after_linking() -> None:
    creds = new_creds()
    with pytest.raises(ValueError, match="linked"):
        login_payload(creds, ClientConfig())
    creds.me = Me("15551234567:7@s.whatsapp.net")
    p = cp.ClientPayload.FromString(login_payload(creds, ClientConfig()))
    assert p.username == 15551234567 and p.device == 7 and p.passive and p.pull
    # Without an ADV account the device is not linked yet: still registration.
    assert cp.ClientPayload.FromString(payload_for(creds, ClientConfig())).HasField(
        "devicePairingData"
    )


def test_config_from_env() -> None:
    assert ClientConfig.from_env({}).url == DEFAULT_URL
    assert ClientConfig.from_env({}).root_key == WA_ROOT_PUBLIC_KEY
    key = bytes(range(32))
    cfg = ClientConfig.from_env(
        {
            "WAHTTP_WA_URL": "ws://127.0.0.1:1/ws/chat",
            "WAHTTP_WA_ROOT_KEY": base64.b64encode(key).decode(),
            "WAHTTP_WA_VERSION": "2.3000.1",
        }
    )
    assert cfg.url == "ws://127.0.0.1:1/ws/chat" and cfg.root_key == key
    assert cfg.version == (2, 3000, 1)
    assert ClientConfig.from_env({"WAHTTP_WA_ROOT_KEY": key.hex()}).root_key == key
    with pytest.raises(ValueError):
        ClientConfig.from_env({"WAHTTP_WA_ROOT_KEY": "tooshort"})


def test_acks_echo_the_stanza() -> None:
    node = Node(
        "notification", {"id": "7", "from": "123@g.us", "type": "w:gp2", "participant": "1@lid"}
    )
    assert ack_for(node) == Node(
        "ack",
        {
            "id": "7",
            "class": "notification",
            "to": "123@g.us",
            "participant": "1@lid",
            "type": "w:gp2",
        },
    )


class SlowStore(MemoryAuthStore):
    """Writes take a moment, as a database's do."""

    async def set(self, changes: dict[str, dict[str, Any]]) -> None:
        await asyncio.sleep(0.001)
        await super().set(changes)


async def test_pre_keys_made_at_the_same_time_get_their_own_ids() -> None:
    store = SlowStore()
    client = Client(store, ClientConfig(), session_id="t")
    await client.load_creds()
    first = client.creds.next_pre_key_id
    made = await asyncio.gather(generate(client, 1), generate(client, 3), generate(client, 1))
    ids = [key_id for keys in made for key_id in keys]
    assert sorted(ids) == list(range(first, first + 5))
    stored = await store.get("pre-key", [str(i) for i in ids])
    for keys in made:
        for key_id, pair in keys.items():
            assert stored[str(key_id)]["public"] == pair.public
    saved = await store.load_creds()
    assert saved is not None and saved.next_pre_key_id == first + 5


async def test_creds_asked_for_twice_at_once_make_one_device() -> None:
    # connect() and the owner's "is it linked?" both read the creds of a new session: they
    # must agree on one noise key, or the pairing code names another key than the stream's.
    class SlowStore(MemoryAuthStore):
        saves = 0

        async def load_creds(self) -> Any:
            await asyncio.sleep(0.01)
            return await super().load_creds()

        async def save_creds(self, creds: Any) -> None:
            self.saves += 1
            await super().save_creds(creds)

    store = SlowStore()
    client = Client(store)
    first, second = await asyncio.gather(client.load_creds(), client.load_creds())
    assert first is second is client.creds
    assert store.saves == 1
    saved = await store.load_creds()
    assert saved is not None and saved.noise_key.public == first.noise_key.public
