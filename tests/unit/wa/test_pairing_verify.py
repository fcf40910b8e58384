"""pair-success verification: our client accepts what a phone signs and refuses forgeries."""

from __future__ import annotations

import pytest

from wahttp.sim.phone import Phone
from wahttp.wa import crypto
from wahttp.wa.auth import new_creds
from wahttp.wa.auth.bufferjson import b64decode
from wahttp.wa.client.pair import ADV_DEVICE_SIG_PREFIX, verify_pair_success
from wahttp.wa.errors import PairingError
from wahttp.wa.proto import adv_pb2


def _phone() -> Phone:
    return Phone(number="15550009999", lid_user="123456789012345", push_name="P")


def test_valid_identity_is_accepted_and_signed_by_us() -> None:
    creds, phone = new_creds(), _phone()
    blob, key_index = phone.sign_companion(
        creds.signed_identity_key.public, b64decode(creds.adv_secret_key)
    )
    account, identity = verify_pair_success(creds, blob)
    assert identity.keyIndex == key_index and account.accountSignatureKey == phone.identity.public
    message = (
        ADV_DEVICE_SIG_PREFIX
        + account.details
        + creds.signed_identity_key.public
        + account.accountSignatureKey
    )
    assert crypto.verify(creds.signed_identity_key.public, message, account.deviceSignature)
    stripped = adv_pb2.ADVSignedDeviceIdentity()
    stripped.CopyFrom(account)
    stripped.ClearField("accountSignatureKey")
    assert phone.check_device_signature(
        creds.signed_identity_key.public, stripped.SerializeToString()
    )


def test_wrong_adv_secret_fails_the_hmac() -> None:
    creds, phone = new_creds(), _phone()
    blob, _ = phone.sign_companion(creds.signed_identity_key.public, b"\x00" * 32)
    with pytest.raises(PairingError, match="HMAC"):
        verify_pair_success(creds, blob)


def test_identity_signed_for_another_device_is_refused() -> None:
    creds, other, phone = new_creds(), new_creds(), _phone()
    # The phone signed the other device's identity, with our ADV secret.
    blob, _ = phone.sign_companion(
        other.signed_identity_key.public, b64decode(creds.adv_secret_key)
    )
    with pytest.raises(PairingError, match="account signature"):
        verify_pair_success(creds, blob)


@pytest.mark.parametrize("blob", [b"", b"\xff\xff\xff", b"\x0a\x05abc"])
def test_garbage_is_a_pairing_error(blob: bytes) -> None:
    with pytest.raises(PairingError):
        verify_pair_success(new_creds(), blob)
