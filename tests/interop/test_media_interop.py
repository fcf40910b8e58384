"""wahttp.wa.media against Baileys' own media code, live.

media_oracle.mjs made tests/unit/wa/media_vectors.json; its deterministic part (hkdfInfoKey and
getMediaKeys for every media type Baileys knows) is checked current here, and Baileys'
downloadExternalBlob (its app-state blob path) decrypts files we encrypt.
Needs Node.js and `npm ci` in tests/interop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from baileys_tools import node_json

from wahttp.wa.media import encrypt_media

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).resolve().parent
SCRIPT = INTEROP_DIR / "media_oracle.mjs"
VECTORS_FILE = INTEROP_DIR.parent / "unit" / "wa" / "media_vectors.json"


def _oracle(*args: str, stdin: str | None = None) -> Any:
    return node_json(SCRIPT, *args, stdin=stdin)


def test_key_vectors_are_current() -> None:
    fresh = _oracle()
    committed = json.loads(VECTORS_FILE.read_text())
    assert fresh["mediaKey"] == committed["mediaKey"]
    assert fresh["keys"] == committed["keys"]
    assert [f["type"] for f in fresh["files"]] == [f["type"] for f in committed["files"]]


@pytest.mark.parametrize("size", [0, 1, 15, 16, 1000, 70000])
def test_baileys_decrypts_our_app_state_blobs(size: int) -> None:
    plain = bytes((i * 7 + 3) % 256 for i in range(size))
    enc = encrypt_media(plain, "md-app-state")
    request = json.dumps({"mediaKey": enc.media_key.hex(), "enc": enc.data.hex()})
    assert bytes.fromhex(_oracle("download", stdin=request)["plain"]) == plain
