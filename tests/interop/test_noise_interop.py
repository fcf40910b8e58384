"""Our Noise layer against Baileys' own noise handler, live (noise_vector.js drives Baileys).

The same vector is frozen in tests/unit/wa/test_noise.py; this reruns the script so a change in
Baileys or in the script shows up here. Needs Node.js and `npm ci` in tests/interop.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from wahttp.wa.certs import verify_cert_chain
from wahttp.wa.crypto import KeyPair
from wahttp.wa.noise import ClientHandshake, ServerHandshake, encode_frame, intro

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
SCRIPT = INTEROP_DIR / "noise_vector.js"


@cache
def _vector() -> dict[str, dict[str, str]]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (INTEROP_DIR / "node_modules" / "baileys").is_dir():
        pytest.skip("tests/interop/node_modules is missing (run npm ci in tests/interop)")
    proc = subprocess.run(
        ["node", str(SCRIPT)], capture_output=True, check=False, timeout=60, cwd=INTEROP_DIR
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    data: dict[str, dict[str, str]] = json.loads(proc.stdout)
    return data


def _in(name: str) -> bytes:
    return bytes.fromhex(_vector()["inputs"][name])


def _out(name: str) -> str:
    return _vector()["outputs"][name]


def _key(name: str) -> KeyPair:
    return KeyPair.from_private(_in(name))


def test_client_against_baileys() -> None:
    client = ClientHandshake(_key("client_ephemeral_private"), _key("client_noise_private"))
    hello = client.hello()
    assert hello.hex() == _out("hello")
    assert (intro() + encode_frame(hello)).hex() == _out("client_first_bytes")
    result = client.read_server_hello(bytes.fromhex(_out("server_hello")))
    assert result.server_static == _key("server_static_private").public
    assert result.cert_chain == _in("cert_chain")
    verify_cert_chain(
        result.cert_chain, result.server_static, _in("root_public"), now=1_800_000_000
    )
    assert client.finish(_in("client_payload")).hex() == _out("finish")
    cipher = client.transport()
    frame = encode_frame(cipher.encrypt(_in("client_transport_plaintext")))
    assert frame.hex() == _out("client_transport_frame")
    server_frame = bytes.fromhex(_out("server_transport_frame"))
    assert cipher.decrypt(server_frame[3:]) == _in("server_transport_plaintext")


def test_server_against_baileys() -> None:
    server = ServerHandshake(
        _key("server_ephemeral_private"), _key("server_static_private"), _in("cert_chain")
    )
    server.read_hello(bytes.fromhex(_out("hello")))
    assert server.server_hello().hex() == _out("server_hello")
    result = server.read_finish(bytes.fromhex(_out("finish")))
    assert result.client_static == _key("client_noise_private").public
    assert result.client_payload == _in("client_payload")
    cipher = server.transport()
    frame = encode_frame(cipher.encrypt(_in("server_transport_plaintext")))
    assert frame.hex() == _out("server_transport_frame")
    client_frame = bytes.fromhex(_out("client_transport_frame"))
    assert cipher.decrypt(client_frame[3:]) == _in("client_transport_plaintext")
