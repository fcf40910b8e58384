"""Media encryption (wahttp.wa.media) against Baileys' own values, the download's host and
size rules, and the media_conn answer.

media_vectors.json is made by tests/interop/media_oracle.mjs (Baileys' hkdfInfoKey,
getMediaKeys and encryptedStream); tests/interop/test_media_interop.py checks it is current.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from wahttp.wa.binary import Node
from wahttp.wa.client.media_conn import parse_media_conn
from wahttp.wa.errors import WAError
from wahttp.wa.media import (
    HKDF_INFO,
    MediaError,
    decrypt_media,
    encrypt_media,
    hkdf_info,
    media_keys,
)
from wahttp.wa.media.download import download_media, media_scheme, media_urls

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "media_vectors.json").read_text())
KEY = bytes(range(32))


@pytest.mark.parametrize("vector", VECTORS["keys"], ids=lambda v: v["type"])
def test_hkdf_info_and_keys_match_baileys(vector: dict[str, str]) -> None:
    assert vector["type"] in HKDF_INFO
    assert hkdf_info(vector["type"]).decode() == vector["info"]
    keys = media_keys(bytes.fromhex(VECTORS["mediaKey"]), vector["type"])
    assert keys.iv.hex() == vector["iv"]
    assert keys.cipher_key.hex() == vector["cipherKey"]
    assert keys.mac_key.hex() == vector["macKey"]
    assert len(keys.ref_key) == 32


def test_the_documented_infos() -> None:
    assert hkdf_info("md-app-state") == b"WhatsApp App State Keys"
    assert hkdf_info("md-msg-hist") == b"WhatsApp History Keys"
    assert hkdf_info("ptt") == b"WhatsApp Audio Keys"
    assert hkdf_info("sticker") == b"WhatsApp Image Keys"
    with pytest.raises(MediaError) as err:
        hkdf_info("nonsense")
    assert err.value.reason == "unknown-type"


@pytest.mark.parametrize("vector", VECTORS["files"], ids=lambda v: v["type"])
def test_baileys_files_decrypt_and_ours_are_identical(vector: dict[str, Any]) -> None:
    key, enc, plain = (bytes.fromhex(vector[k]) for k in ("mediaKey", "enc", "plain"))
    got = decrypt_media(
        enc,
        key,
        vector["type"],
        file_enc_sha256=bytes.fromhex(vector["fileEncSha256"]),
        file_sha256=bytes.fromhex(vector["fileSha256"]),
    )
    assert got == plain
    ours = encrypt_media(plain, vector["type"], key)
    assert ours.data == enc  # the IV comes from the key: encryption is deterministic
    assert ours.data[-10:].hex() == vector["mac"]
    assert ours.file_sha256.hex() == vector["fileSha256"]
    assert ours.file_enc_sha256.hex() == vector["fileEncSha256"]
    assert ours.file_length == vector["fileLength"]


def test_round_trip_with_a_fresh_key() -> None:
    plain = b"x" * 12345
    enc = encrypt_media(plain, "md-app-state")
    assert len(enc.media_key) == 32 and len(enc.data) == 12352 + 10
    back = decrypt_media(
        enc.data,
        enc.media_key,
        "md-app-state",
        file_enc_sha256=enc.file_enc_sha256,
        file_sha256=enc.file_sha256,
    )
    assert back == plain
    # Another type's keys do not open it.
    with pytest.raises(MediaError) as err:
        decrypt_media(enc.data, enc.media_key, "md-msg-hist")
    assert err.value.reason == "mac"


def _enc() -> tuple[bytes, bytes, bytes]:
    enc = encrypt_media(b"contacts and chats" * 10, "md-app-state", KEY)
    return enc.data, enc.file_enc_sha256, enc.file_sha256


def _reason(data: bytes, enc_sha: bytes | None, sha: bytes | None, key: bytes = KEY) -> str:
    with pytest.raises(MediaError) as err:
        decrypt_media(data, key, "md-app-state", file_enc_sha256=enc_sha, file_sha256=sha)
    text = str(err.value)
    assert key.hex() not in text and KEY.hex()[:16] not in text
    return err.value.reason


def test_tampered_files_are_refused() -> None:
    data, enc_sha, sha = _enc()
    flipped_mac = data[:-1] + bytes([data[-1] ^ 1])
    flipped_body = bytes([data[0] ^ 1]) + data[1:]
    # The whole file's hash first, then the MAC, then the plain bytes' hash.
    assert _reason(flipped_mac, enc_sha, sha) == "enc-sha256"
    assert _reason(flipped_body, enc_sha, sha) == "enc-sha256"
    assert _reason(flipped_mac, None, sha) == "mac"
    assert _reason(flipped_body, None, None) == "mac"
    assert _reason(data, enc_sha, hashlib.sha256(b"other").digest()) == "sha256"
    assert _reason(data, hashlib.sha256(b"other").digest(), sha) == "enc-sha256"
    assert _reason(data[:20], None, None) == "too-short"
    assert _reason(data[:-1], None, None) == "decrypt"
    assert _reason(data, enc_sha, sha, key=KEY[:31]) == "bad-key"
    assert decrypt_media(data, KEY, "md-app-state", file_enc_sha256=enc_sha, file_sha256=sha)


def test_keys_do_not_show_in_repr() -> None:
    enc = encrypt_media(b"secret", "image", KEY)
    assert KEY.hex() not in repr(enc) and "\\x00\\x01" not in repr(enc)
    assert repr(media_keys(KEY, "image")) == "MediaKeys(…)"


# -- download --------------------------------------------------------------------------------


def test_scheme_and_urls() -> None:
    assert media_scheme("ws://127.0.0.1:5000/ws/chat") == "http"
    assert media_scheme("wss://web.whatsapp.com/ws/chat") == "https"
    assert media_urls("/v/t62/x.enc?ccb=11-4", ["a.net", "b.net:8080"]) == [
        "https://a.net/v/t62/x.enc?ccb=11-4",
        "https://b.net:8080/v/t62/x.enc?ccb=11-4",
    ]
    assert media_urls("/v/x", []) == ["https://mmg.whatsapp.net/v/x"]
    for bad in ("//evil.example/x", "http://evil.example/x", "v/x", ""):
        with pytest.raises(MediaError):
            media_urls(bad, ["a.net"])


def _serve(routes: dict[str, tuple[int, bytes]], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}:{request.url.port or ''}")
        status, body = routes.get(request.url.host, (404, b""))
        assert request.headers["origin"] == "https://web.whatsapp.com"
        return httpx.Response(status, content=body)

    return httpx.MockTransport(handler)


async def _download(
    routes: dict[str, tuple[int, bytes | None]], **kw: Any
) -> tuple[bytes, list[str]]:
    data, enc_sha, sha = _enc()
    seen: list[str] = []
    plain = await download_media(
        "/v/t62.15575-24/abc.enc?ccb=11-4",
        ["one.example", "two.example", "three.example"],
        KEY,
        "md-app-state",
        scheme="http",
        file_enc_sha256=enc_sha,
        file_sha256=sha,
        transport=_serve({k: (s, data if b is None else b) for k, (s, b) in routes.items()}, seen),
        **kw,
    )
    return plain, seen


async def test_download_tries_the_hosts_in_order() -> None:
    plain, seen = await _download({"one.example": (500, b""), "two.example": (200, None)})
    assert plain == b"contacts and chats" * 10
    assert [s.split(":")[0] for s in seen] == ["one.example", "two.example"]
    # A host serving a different file (its hash fails) is passed over too.
    plain, seen = await _download(
        {
            "one.example": (200, b"\x00" * 42),
            "two.example": (404, b""),
            "three.example": (200, None),
        }
    )
    assert plain and len(seen) == 3


async def test_download_fails_when_every_host_fails() -> None:
    with pytest.raises(MediaError) as err:
        await _download({"one.example": (500, b""), "two.example": (403, b"")})
    assert err.value.reason == "download"


async def test_download_size_limit() -> None:
    every: dict[str, tuple[int, bytes | None]] = {
        h: (200, None) for h in ("one.example", "two.example", "three.example")
    }
    with pytest.raises(MediaError) as err:
        await _download(every, max_size=100)
    assert err.value.reason == "size"
    # The declared plain size bounds the body too.
    with pytest.raises(MediaError) as err:
        await _download(every, file_size=10)
    assert err.value.reason == "size"
    assert (await _download(every, file_size=180))[0]


async def test_a_bad_mac_is_not_retried_on_other_hosts() -> None:
    data, _, sha = _enc()
    seen: list[str] = []
    bad = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(MediaError) as err:
        await download_media(
            "/v/x.enc",
            ["one.example", "two.example"],
            KEY,
            "md-app-state",
            file_sha256=sha,
            transport=_serve({"one.example": (200, bad), "two.example": (200, data)}, seen),
        )
    assert err.value.reason == "mac" and len(seen) == 1


# -- media_conn ------------------------------------------------------------------------------


def _answer(*hosts: str, **attrs: str) -> Node:
    conn = Node(
        "media_conn",
        {"auth": "AUTH-TOKEN", "ttl": "300", "auth_ttl": "21600", "max_buckets": "12", **attrs},
        [Node("host", {"hostname": h, "maxContentLengthBytes": "104857600"}) for h in hosts],
    )
    return Node("iq", {"type": "result", "from": "s.whatsapp.net"}, [conn])


def test_media_conn_answer() -> None:
    mc = parse_media_conn(_answer("mmg.whatsapp.net", "127.0.0.1:8080"), now=100.0)
    assert [h.hostname for h in mc.hosts] == ["mmg.whatsapp.net", "127.0.0.1:8080"]
    assert mc.hosts[0].max_content_length == 104857600
    assert (mc.auth, mc.ttl, mc.auth_ttl, mc.max_buckets) == ("AUTH-TOKEN", 300, 21600, 12)
    assert not mc.expired(399.9) and mc.expired(400.0)
    assert "AUTH-TOKEN" not in repr(mc)


def test_media_conn_hosts_that_could_bend_the_url_are_dropped() -> None:
    mc = parse_media_conn(_answer("evil.example/path", "a@b", "ok.example", "x:99999", ""))
    assert [h.hostname for h in mc.hosts] == ["ok.example"]
    with pytest.raises(WAError):
        parse_media_conn(_answer("bad host"))
    with pytest.raises(WAError):
        parse_media_conn(Node("iq", {"type": "result"}, []))
    assert parse_media_conn(_answer("a.example", ttl="")).ttl == 300
