"""wahttp.wa.appstate against Baileys' own app-state code, live.

appstate_oracle.mjs made the vectors frozen in tests/unit/wa/appstate_vectors.json; its
deterministic parts (key expansion, LT hash) are checked current here, and with `decode` Baileys'
decodeSyncdPatch / decodeSyncdSnapshot judge patches and snapshots that we encode.
Needs Node.js and `npm ci` in tests/interop.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from baileys_tools import node_json

from wahttp.wa.appstate import CollectionState, NewMutation, encode_patch, encode_snapshot
from wahttp.wa.proto import appstate_pb2 as pb

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
SCRIPT = INTEROP_DIR / "appstate_oracle.mjs"
VECTORS_FILE = INTEROP_DIR.parent / "unit" / "wa" / "appstate_vectors.json"
KEY_ID = bytes.fromhex("a1b2c3d4e5f6")
KEY_DATA = bytes(range(32))
JID = "15550003333@s.whatsapp.net"


def _oracle(*args: str, stdin: str | None = None) -> Any:
    return node_json(SCRIPT, *args, stdin=stdin)


def test_deterministic_vectors_are_current() -> None:
    fresh = _oracle()
    committed = json.loads(VECTORS_FILE.read_text())
    assert fresh["mutationKeys"] == committed["mutationKeys"]
    assert fresh["ltHash"] == committed["ltHash"]
    assert [p["after"]["hash"] for p in fresh["patches"]] != []


def _state_json(state: CollectionState) -> dict[str, Any]:
    return {
        "version": state.version,
        "hash": state.hash.hex(),
        "indexValueMap": {k: v.hex() for k, v in state.index_value_map.items()},
    }


def _baileys_decode(kind: str, name: str, data: bytes, state: CollectionState) -> Any:
    request = {
        "kind": kind,
        "name": name,
        "data": data.hex(),
        "state": _state_json(state),
        "keys": {base64.b64encode(KEY_ID).decode(): KEY_DATA.hex()},
    }
    return _oracle("decode", stdin=json.dumps(request))


def _contact(name: str) -> pb.SyncActionValue:
    value = pb.SyncActionValue(timestamp=1764800000000)
    value.contactAction.fullName = name
    value.contactAction.firstName = name.split(maxsplit=1)[0]
    return value


def test_baileys_decodes_our_patches() -> None:
    archive = pb.SyncActionValue(timestamp=1764800000001)
    archive.archiveChatAction.archived = True
    first = [
        NewMutation("set", ["contact", JID], _contact("Ada Lovelace"), 2),
        NewMutation("set", ["archive", JID], archive, 3),
    ]
    patch, state = encode_patch("regular_low", CollectionState(), KEY_ID, KEY_DATA, first)
    got = _baileys_decode("patch", "regular_low", patch.SerializeToString(), CollectionState())
    assert got["ok"], got
    assert got["state"] == _state_json(state)
    assert [m["index"] for m in got["mutations"]] == [["contact", JID], ["archive", JID]]
    assert got["mutations"][0]["value"]["contactAction"]["fullName"] == "Ada Lovelace"
    # The next patch overwrites the contact and removes the archive record.
    second = [
        NewMutation("set", ["contact", JID], _contact("Ada K. Lovelace"), 2),
        NewMutation("remove", ["archive", JID], archive, 3),
    ]
    patch2, state2 = encode_patch("regular_low", state, KEY_ID, KEY_DATA, second)
    got2 = _baileys_decode("patch", "regular_low", patch2.SerializeToString(), state)
    assert got2["ok"], got2
    assert got2["state"] == _state_json(state2)
    # Tampered: Baileys refuses the patch MAC too.
    patch2.patchMac = bytes(32)
    bad = _baileys_decode("patch", "regular_low", patch2.SerializeToString(), state)
    assert not bad["ok"] and "mac" in bad["error"].lower()


def test_baileys_decodes_our_snapshot() -> None:
    records = [
        NewMutation("set", ["contact", JID], _contact("Grace Hopper"), 2),
        NewMutation("set", ["contact", "15550004444@s.whatsapp.net"], _contact("Alan Turing"), 2),
    ]
    snapshot, state = encode_snapshot("critical_unblock_low", 7, KEY_ID, KEY_DATA, records)
    got = _baileys_decode(
        "snapshot", "critical_unblock_low", snapshot.SerializeToString(), CollectionState()
    )
    assert got["ok"], got
    assert got["warnings"] == []  # Baileys only warns on a snapshot MAC mismatch
    assert got["state"] == _state_json(state)
    names = sorted(m["value"]["contactAction"]["fullName"] for m in got["mutations"])
    assert names == ["Alan Turing", "Grace Hopper"]
    snapshot.mac = bytes(32)
    bad = _baileys_decode(
        "snapshot", "critical_unblock_low", snapshot.SerializeToString(), CollectionState()
    )
    assert bad["warnings"]
