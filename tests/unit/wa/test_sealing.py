"""Sealing of auth values (AES-256-GCM envelopes), key parsing, and sealed auth folders."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from wahttp.wa.auth import sealing
from wahttp.wa.auth.bufferjson import js_json_loads
from wahttp.wa.auth.creds import new_creds
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.multifile import (
    AuthFolderError,
    export_folder,
    import_folder,
    read_folder,
)
from wahttp.wa.auth.sealing import (
    SEALED,
    KeyConfigError,
    SealContext,
    Sealer,
    SealError,
    derive_key_id,
    is_sealed,
    load_key_file,
    open_sealed,
    parse_keys,
)
from wahttp.wa.auth.store import MemoryAuthStore

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
CTX = SealContext("alice", "pre-key", "1")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_seal_and_open() -> None:
    sealer = Sealer([("a", KEY_A)])
    secret = b'{"private":"' + b"s" * 40 + b'"}'
    envelope = sealer.seal(secret, CTX)
    assert is_sealed(envelope) and sealer.is_current(envelope)
    assert set(envelope) == {SEALED, "kid", "salt", "iv", "ct"}
    assert envelope["kid"] == "a" and b"s" * 8 not in json.dumps(envelope).encode()
    assert sealer.open(envelope, CTX) == secret
    # A fresh IV each time, and the envelope survives a JSON round trip.
    again = sealer.seal(secret, CTX)
    assert again["iv"] != envelope["iv"] and again["ct"] != envelope["ct"]
    assert sealer.open(json.loads(json.dumps(again)), CTX) == secret
    assert not is_sealed({"private": "x"}) and not is_sealed("wahttp:sealed")


@pytest.mark.parametrize(
    "other",
    [
        SealContext("bob", "pre-key", "1"),
        SealContext("alice", "pre-key", "2"),
        SealContext("alice", "session", "1"),
        SealContext("alice"),
    ],
)
def test_a_value_opens_only_where_it_was_sealed(other: SealContext) -> None:
    sealer = Sealer([("a", KEY_A)])
    envelope = sealer.seal(b"{}", CTX)
    with pytest.raises(SealError, match="altered or moved"):
        sealer.open(envelope, other)


def test_tampering_and_wrong_keys_are_errors_not_garbage() -> None:
    sealer = Sealer([("a", KEY_A)])
    envelope = sealer.seal(b'{"v":1}', CTX)
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[0] ^= 1
    with pytest.raises(SealError, match="cannot decrypt"):
        sealer.open({**envelope, "ct": b64(bytes(ct))}, CTX)
    with pytest.raises(SealError, match="cannot decrypt"):
        sealer.open({**envelope, "salt": b64(bytes(16))}, CTX)
    with pytest.raises(SealError, match="cannot decrypt"):
        Sealer([("a", KEY_B)]).open(envelope, CTX)  # same key id, another key
    with pytest.raises(SealError, match="key id 'a', which is not configured"):
        Sealer([("b", KEY_B)]).open(envelope, CTX)
    with pytest.raises(SealError, match="no encryption key is configured"):
        open_sealed(None, envelope, CTX)
    for broken in (
        {**envelope, SEALED: 2},
        {**envelope, "iv": "!!"},
        {**envelope, "iv": b64(b"x" * 8)},
        {k: v for k, v in envelope.items() if k != "ct"},
        {**envelope, "kid": 5},
    ):
        with pytest.raises(SealError):
            sealer.open(broken, CTX)


def test_old_keys_open_and_the_first_key_seals() -> None:
    old = Sealer([("a", KEY_A)]).seal(b"1", CTX)
    ring = Sealer([("b", KEY_B), ("a", KEY_A)])
    assert ring.current_kid == "b" and ring.kids == ("b", "a")
    assert ring.open(old, CTX) == b"1" and not ring.is_current(old)
    assert ring.seal(b"2", CTX)["kid"] == "b"
    assert "KEY" not in repr(ring) and b64(KEY_A) not in repr(ring)


def test_a_new_derived_key_every_so_many_seals() -> None:
    sealer = Sealer([("a", KEY_A)])
    first = sealer.seal(b"1", CTX)
    assert sealer.seal(b"2", CTX)["salt"] == first["salt"]
    sealer._uses = sealing.SEALS_PER_SUBKEY
    later = sealer.seal(b"3", CTX)
    assert later["salt"] != first["salt"]
    assert sealer.open(first, CTX) == b"1" and sealer.open(later, CTX) == b"3"
    # Another process (another salt) reads them too.
    assert Sealer([("a", KEY_A)]).open(first, CTX) == b"1"


def test_parse_keys() -> None:
    std = b64(KEY_A)
    url = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    keys = parse_keys(f" main:{std} , {KEY_B.hex()}\n# a comment\n\nold:{url}\n", "env")
    assert keys == [("main", KEY_A), (derive_key_id(KEY_B), KEY_B), ("old", KEY_B)]
    assert derive_key_id(KEY_B) == derive_key_id(KEY_B) != derive_key_id(KEY_A)
    assert len(derive_key_id(KEY_A)) == 8


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment",
        b64(KEY_A[:16]),
        b64(KEY_A) + "AAAA",
        KEY_A.hex()[:-2],
        f"bad id:{b64(KEY_A)}",
        f":{b64(KEY_A)}",
        "not a key at all, " + b64(KEY_A),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(KeyConfigError) as info:
        parse_keys(text, "WAHTTP_ENCRYPTION_KEY")
    message = str(info.value)
    assert "WAHTTP_ENCRYPTION_KEY" in message
    assert b64(KEY_A) not in message and KEY_A.hex()[:16] not in message


def test_a_key_ring_refuses_duplicates() -> None:
    with pytest.raises(KeyConfigError, match="twice"):
        Sealer(parse_keys(f"a:{b64(KEY_A)},a:{b64(KEY_B)}", "env"))
    with pytest.raises(KeyConfigError):
        Sealer([])


def test_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"new:{b64(KEY_B)}\nold:{KEY_A.hex()}\n")
    assert load_key_file(path) == [("new", KEY_B), ("old", KEY_A)]
    with pytest.raises(KeyConfigError, match="cannot read"):
        load_key_file(tmp_path / "missing")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(KeyConfigError, match="not a text file"):
        load_key_file(path)


# --- sealed folders ---------------------------------------------------------------------------


async def test_a_sealed_mirror_holds_no_clear_key_and_reads_back(tmp_path: Path) -> None:
    sealer = Sealer([("a", KEY_A)])
    folder = tmp_path / "alice"
    mirror = FolderMirror(MemoryAuthStore(), folder, sealer=sealer)
    creds = new_creds()
    secret = os.urandom(32)
    await mirror.save_creds(creds)
    await mirror.set({"pre-key": {"1": {"private": secret, "public": b"p" * 32}}})
    raw = b"".join(p.read_bytes() for p in folder.iterdir())
    for needle in (secret, creds.noise_key.private, creds.signed_identity_key.private):
        assert needle not in raw and b64(needle).encode() not in raw
        assert needle.hex().encode() not in raw
    assert creds.adv_secret_key.encode() not in raw
    assert all(is_sealed(js_json_loads(p.read_text())) for p in folder.iterdir())

    state = read_folder(folder, sealer=sealer)
    assert state.creds.to_json() == creds.to_json()
    assert state.keys == {"pre-key": {"1": {"private": secret, "public": b"p" * 32}}}
    with pytest.raises(AuthFolderError, match="no encryption key is configured"):
        read_folder(folder)
    # Sealed for "alice": under another name (or session) the files do not open.
    shutil.copytree(folder, tmp_path / "bob")
    with pytest.raises(AuthFolderError, match="altered or moved"):
        read_folder(tmp_path / "bob", sealer=sealer)
    assert read_folder(tmp_path / "bob", sealer=sealer, session_id="alice").creds.to_json() == (
        creds.to_json()
    )
    # A file copied over another is caught too.
    (folder / "pre-key-2.json").write_bytes((folder / "pre-key-1.json").read_bytes())
    with pytest.raises(AuthFolderError, match=r"pre-key-2\.json"):
        read_folder(folder, sealer=sealer)

    # Import opens a sealed folder; export writes clear files (what Baileys loads).
    (folder / "pre-key-2.json").unlink()
    store = MemoryAuthStore()
    await import_folder(folder, store, sealer=sealer)
    await export_folder(store, tmp_path / "clear")
    clear = read_folder(tmp_path / "clear")
    assert clear.keys == state.keys and clear.creds.to_json() == creds.to_json()
    assert b64(secret).encode() in (tmp_path / "clear" / "pre-key-1.json").read_bytes()
