"""The Noise server's certificate chain (root -> intermediate -> leaf = server static key).

Verification follows whatsmeow; issuing is for our simulator, which signs with its own root.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time

from google.protobuf.message import DecodeError

from wahttp.wa import crypto
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import CertificateError
from wahttp.wa.proto.handshake_pb2 import CertChain

# WhatsApp's long-term root ("WhatsAppLongTerm1"); Baileys WA_CERT_DETAILS, whatsmeow WACertPubKey.
WA_ROOT_PUBLIC_KEY = bytes.fromhex(
    "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"
)
# The root's serial: every intermediate must name it as its issuer.
ROOT_SERIAL = 0
DEFAULT_INTERMEDIATE_SERIAL = 1
_DAY = 24 * 60 * 60
_TEN_YEARS = 10 * 365 * _DAY

_Certificate = CertChain.NoiseCertificate
_Details = CertChain.NoiseCertificate.Details


def verify_cert_chain(
    chain: bytes, server_static: bytes, root_public: bytes, now: int | None = None
) -> None:
    """Check the serialized CertChain vouches for `server_static` under `root_public`.

    Raises CertificateError naming the first check that failed.
    """
    parsed = _parse_chain(chain)
    intermediate = _certificate(parsed, "intermediate")
    leaf = _certificate(parsed, "leaf")
    _check_signature(root_public, intermediate, "intermediate")
    issuer = _details(intermediate, "intermediate")
    if issuer.issuerSerial != ROOT_SERIAL:
        raise CertificateError(
            f"intermediate certificate names issuer serial {issuer.issuerSerial}, "
            f"expected the root ({ROOT_SERIAL})"
        )
    if len(issuer.key) != crypto.KEY_SIZE:
        raise CertificateError(f"intermediate certificate key has {len(issuer.key)} bytes")
    _check_signature(issuer.key, leaf, "leaf")
    subject = _details(leaf, "leaf")
    if subject.issuerSerial != issuer.serial:
        raise CertificateError(
            f"leaf certificate names issuer serial {subject.issuerSerial}, "
            f"expected the intermediate's ({issuer.serial})"
        )
    if not hmac.compare_digest(subject.key, server_static):
        raise CertificateError("leaf certificate key is not the server's static key")
    when = int(time.time()) if now is None else now
    _check_validity(issuer, "intermediate", when)
    _check_validity(subject, "leaf", when)


def _parse_chain(chain: bytes) -> CertChain:
    try:
        return CertChain.FromString(chain)
    except (DecodeError, ValueError, TypeError) as exc:
        raise CertificateError("certificate chain is not a valid CertChain") from exc


def _certificate(chain: CertChain, which: str) -> CertChain.NoiseCertificate:
    if not chain.HasField(which):
        raise CertificateError(f"certificate chain has no {which} certificate")
    cert: CertChain.NoiseCertificate = getattr(chain, which)
    if not (cert.HasField("details") and cert.HasField("signature")):
        raise CertificateError(f"{which} certificate lacks its details or signature")
    return cert


def _check_signature(signer: bytes, cert: CertChain.NoiseCertificate, which: str) -> None:
    if len(cert.signature) != crypto.SIGNATURE_SIZE:
        raise CertificateError(f"{which} certificate signature has {len(cert.signature)} bytes")
    if not crypto.verify(signer, cert.details, cert.signature):
        who = "the root key" if which == "intermediate" else "the intermediate key"
        raise CertificateError(f"{which} certificate is not signed by {who}")


def _details(cert: CertChain.NoiseCertificate, which: str) -> CertChain.NoiseCertificate.Details:
    try:
        return _Details.FromString(cert.details)
    except (DecodeError, ValueError, TypeError) as exc:
        raise CertificateError(f"{which} certificate details are malformed") from exc


def _check_validity(details: CertChain.NoiseCertificate.Details, which: str, now: int) -> None:
    if details.HasField("notBefore") and now < details.notBefore:
        raise CertificateError(
            f"{which} certificate not valid before {details.notBefore} (now {now})"
        )
    if details.HasField("notAfter") and now > details.notAfter:
        raise CertificateError(f"{which} certificate expired at {details.notAfter} (now {now})")


def issue_cert_chain(
    root: KeyPair,
    server_static_public: bytes,
    *,
    intermediate: KeyPair | None = None,
    serial: int = DEFAULT_INTERMEDIATE_SERIAL,
    leaf_serial: int | None = None,
    not_before: int | None = None,
    not_after: int | None = None,
) -> bytes:
    """A serialized CertChain for `server_static_public`: root signs the intermediate, which
    signs the leaf. `serial` is the intermediate's; the leaf defaults to `serial + 1`.
    """
    inter = intermediate if intermediate is not None else KeyPair.generate()
    now = int(time.time())
    start = now - _DAY if not_before is None else not_before
    end = now + _TEN_YEARS if not_after is None else not_after
    inter_details = _Details(
        serial=serial, issuerSerial=ROOT_SERIAL, key=inter.public, notBefore=start, notAfter=end
    )
    leaf_details = _Details(
        serial=serial + 1 if leaf_serial is None else leaf_serial,
        issuerSerial=serial,
        key=crypto.strip_key_type(server_static_public),
        notBefore=start,
        notAfter=end,
    )
    chain = CertChain(
        intermediate=_signed(root, inter_details.SerializeToString()),
        leaf=_signed(inter, leaf_details.SerializeToString()),
    )
    return chain.SerializeToString()


def _signed(signer: KeyPair, details: bytes) -> CertChain.NoiseCertificate:
    return _Certificate(details=details, signature=signer.sign(details))


def parse_root_key(text: str) -> bytes:
    """A 32-byte root public key from hex or base64 (standard or URL-safe, padding optional).

    Used for WAHTTP_WA_ROOT_KEY; raises ValueError for anything that is not exactly 32 bytes.
    """
    value = text.strip()
    key = _from_hex(value)
    if key is None:
        key = _from_base64(value)
    if key is None or len(key) != crypto.KEY_SIZE:
        raise ValueError("a root key is 32 bytes written as hex or base64")
    return key


def _from_hex(value: str) -> bytes | None:
    if len(value) != 2 * crypto.KEY_SIZE:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _from_base64(value: str) -> bytes | None:
    standard = value.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
