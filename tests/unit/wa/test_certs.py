"""Server certificate chain: issuing for the simulator, verifying like whatsmeow, root keys."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wahttp.wa.certs import (
    WA_ROOT_PUBLIC_KEY,
    issue_cert_chain,
    parse_root_key,
    verify_cert_chain,
)
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import CertificateError, HandshakeError
from wahttp.wa.proto.handshake_pb2 import CertChain

Details = CertChain.NoiseCertificate.Details
NOW = 1_800_000_000
ROOT = KeyPair.generate()
INTERMEDIATE = KeyPair.generate()
STATIC = KeyPair.generate()


def _chain(**overrides: int | bytes) -> bytes:
    """A properly signed chain whose details fields can be overridden (prefix inter_/leaf_)."""
    window = {"notBefore": NOW - 10, "notAfter": NOW + 10}
    inter = Details(serial=7, issuerSerial=0, key=INTERMEDIATE.public, **window)
    leaf = Details(serial=8, issuerSerial=7, key=STATIC.public, **window)
    for name, value in overrides.items():
        which, field = name.split("_", 1)
        setattr(inter if which == "inter" else leaf, field, value)
    return _sign(ROOT, inter.SerializeToString(), INTERMEDIATE, leaf.SerializeToString())


def _sign(root: KeyPair, inter: bytes, signer: KeyPair, leaf: bytes) -> bytes:
    return CertChain(
        intermediate={"details": inter, "signature": root.sign(inter)},
        leaf={"details": leaf, "signature": signer.sign(leaf)},
    ).SerializeToString()


def _verify(chain: bytes, static: bytes = STATIC.public, root: bytes = ROOT.public) -> None:
    verify_cert_chain(chain, static, root, now=NOW)


def _edit(chain: bytes, edit: Callable[[CertChain], None]) -> bytes:
    parsed = CertChain.FromString(chain)
    edit(parsed)
    return parsed.SerializeToString()


def test_root_key_is_whatsapps() -> None:
    assert WA_ROOT_PUBLIC_KEY.hex() == (
        "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"
    )


def test_certificate_error_is_a_handshake_error() -> None:
    assert issubclass(CertificateError, HandshakeError)


def test_issued_chain_verifies_now() -> None:
    chain = issue_cert_chain(ROOT, STATIC.public)
    verify_cert_chain(chain, STATIC.public, ROOT.public)


def test_issued_chain_fields() -> None:
    chain = CertChain.FromString(
        issue_cert_chain(ROOT, STATIC.public, intermediate=INTERMEDIATE, serial=3)
    )
    inter = Details.FromString(chain.intermediate.details)
    leaf = Details.FromString(chain.leaf.details)
    assert (inter.serial, inter.issuerSerial, inter.key) == (3, 0, INTERMEDIATE.public)
    assert (leaf.serial, leaf.issuerSerial, leaf.key) == (4, 3, STATIC.public)
    assert inter.notBefore < inter.notAfter


def test_handmade_chain_verifies() -> None:
    _verify(_chain())


def test_chain_without_validity_fields_verifies() -> None:
    inter = Details(serial=1, issuerSerial=0, key=INTERMEDIATE.public).SerializeToString()
    leaf = Details(serial=2, issuerSerial=1, key=STATIC.public).SerializeToString()
    _verify(_sign(ROOT, inter, INTERMEDIATE, leaf))


def test_wrong_root() -> None:
    with pytest.raises(CertificateError, match=r"intermediate.*root"):
        _verify(_chain(), root=KeyPair.generate().public)


def test_real_root_rejects_simulator_chain() -> None:
    with pytest.raises(CertificateError):
        _verify(_chain(), root=WA_ROOT_PUBLIC_KEY)


@pytest.mark.parametrize("which", ["intermediate", "leaf"])
def test_tampered_details(which: str) -> None:
    def flip(chain: CertChain) -> None:
        cert = getattr(chain, which)
        details = bytearray(cert.details)
        details[-1] ^= 0x01
        cert.details = bytes(details)

    with pytest.raises(CertificateError, match=which):
        _verify(_edit(_chain(), flip))


@pytest.mark.parametrize("which", ["intermediate", "leaf"])
def test_bad_signature_length(which: str) -> None:
    def cut(chain: CertChain) -> None:
        getattr(chain, which).signature = b"\x00" * 63

    with pytest.raises(CertificateError, match="signature"):
        _verify(_edit(_chain(), cut))


def test_leaf_signed_by_someone_else() -> None:
    inter = Details(serial=7, issuerSerial=0, key=INTERMEDIATE.public).SerializeToString()
    leaf = Details(serial=8, issuerSerial=7, key=STATIC.public).SerializeToString()
    with pytest.raises(CertificateError, match=r"leaf.*intermediate"):
        _verify(_sign(ROOT, inter, KeyPair.generate(), leaf))


def test_wrong_leaf_key() -> None:
    with pytest.raises(CertificateError, match="static"):
        _verify(_chain(), static=KeyPair.generate().public)


def test_intermediate_issuer_serial_must_be_root() -> None:
    with pytest.raises(CertificateError, match="issuer serial"):
        _verify(_chain(inter_issuerSerial=1))


def test_leaf_issuer_serial_must_be_intermediate() -> None:
    with pytest.raises(CertificateError, match="issuer serial"):
        _verify(_chain(leaf_issuerSerial=6))


def test_intermediate_key_length() -> None:
    with pytest.raises(CertificateError, match="key"):
        _verify(_chain(inter_key=b"\x05" + INTERMEDIATE.public))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("inter_notAfter", NOW - 1, "intermediate certificate expired"),
        ("leaf_notAfter", NOW - 1, "leaf certificate expired"),
        ("inter_notBefore", NOW + 1, "intermediate certificate not valid before"),
        ("leaf_notBefore", NOW + 1, "leaf certificate not valid before"),
    ],
)
def test_validity_window(field: str, value: int, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        _verify(_chain(**{field: value}))


def test_validity_bounds_are_inclusive() -> None:
    _verify(_chain(inter_notAfter=NOW, leaf_notBefore=NOW))


def test_issued_chain_expires() -> None:
    chain = issue_cert_chain(ROOT, STATIC.public, not_before=100, not_after=200)
    verify_cert_chain(chain, STATIC.public, ROOT.public, now=150)
    with pytest.raises(CertificateError, match="expired"):
        verify_cert_chain(chain, STATIC.public, ROOT.public, now=201)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_cert_chain(chain, STATIC.public, ROOT.public, now=99)


@pytest.mark.parametrize("which", ["intermediate", "leaf"])
def test_missing_certificate(which: str) -> None:
    with pytest.raises(CertificateError, match=which):
        _verify(_edit(_chain(), lambda chain: chain.ClearField(which)))


def test_missing_signature() -> None:
    with pytest.raises(CertificateError, match="signature"):
        _verify(_edit(_chain(), lambda chain: chain.leaf.ClearField("signature")))


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff\xff", b"not a certificate chain"])
def test_garbage(data: bytes) -> None:
    with pytest.raises(CertificateError):
        _verify(data)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_certificate_error(data: bytes) -> None:
    with pytest.raises(CertificateError):
        _verify(data)


KEY = bytes(range(32))


@pytest.mark.parametrize(
    "text",
    [
        KEY.hex(),
        KEY.hex().upper(),
        base64.b64encode(KEY).decode(),
        base64.b64encode(KEY).decode().rstrip("="),
        base64.urlsafe_b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        f"  {KEY.hex()}\n",
    ],
)
def test_parse_root_key(text: str) -> None:
    assert parse_root_key(text) == KEY


def test_parse_real_root_key() -> None:
    assert parse_root_key(base64.b64encode(WA_ROOT_PUBLIC_KEY).decode()) == WA_ROOT_PUBLIC_KEY


@pytest.mark.parametrize(
    "text",
    [
        "",
        KEY.hex()[:-2],
        KEY.hex() + "00",
        base64.b64encode(KEY[:31]).decode(),
        base64.b64encode(KEY + b"\x00").decode(),
        "zz" * 32,
        "not a key at all!",
        "é" * 43,
    ],
)
def test_parse_root_key_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_root_key(text)
