"""The double ratchet as libsignal-node runs it: key derivations, chain steps, DH ratchet steps.

Functions here change the SessionEntry (or Chain) they are given; the cipher hands them a fork.
"""

from __future__ import annotations

import hmac
from itertools import islice

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wahttp.wa.crypto import KeyPair, hkdf, with_key_type, x25519
from wahttp.wa.signal.errors import InvalidMessage
from wahttp.wa.signal.messages import MAC_SIZE
from wahttp.wa.signal.record import Chain, ChainType, SessionEntry

ZERO_SALT = bytes(32)
ROOT_INFO = b"WhisperRatchet"
MESSAGE_KEYS_INFO = b"WhisperMessageKeys"
# libsignal-node refuses a message more than this many steps ahead of its chain.
MAX_FUTURE_MESSAGES = 2000
# libsignal-node keeps skipped keys and old receiving chains without bound. We keep at most 2000
# skipped keys per chain (libsignal's Rust/Java/Go bound), and drop closed receiving chains that
# hold no skipped keys once there are more than 5 receiving chains: they can decrypt nothing.
MAX_MESSAGE_KEYS = 2000
MAX_RECEIVING_CHAINS = 5
_MESSAGE_KEY_SEED = b"\x01"
_CHAIN_KEY_SEED = b"\x02"
_BLOCK = 16


def root_step(root_key: bytes, our_private: bytes, their_public: bytes) -> tuple[bytes, bytes]:
    """A DH ratchet step: (next root key, new chain key). ValueError on a low-order key."""
    out = hkdf(x25519(our_private, their_public), 64, root_key, ROOT_INFO)
    return out[:32], out[32:]


def message_keys(seed: bytes) -> tuple[bytes, bytes, bytes]:
    """(AES-256 key, HMAC key, CBC IV) for one message."""
    out = hkdf(seed, 80, ZERO_SALT, MESSAGE_KEYS_INFO)
    return out[:32], out[32:64], out[64:80]


def mac(mac_key: bytes, sender_identity: bytes, receiver_identity: bytes, signed: bytes) -> bytes:
    return hmac.digest(mac_key, sender_identity + receiver_identity + signed, "sha256")[:MAC_SIZE]


def next_sending_key(chain: Chain) -> bytes:
    """Step a sending chain once and return the message key seed for its new counter."""
    if chain.key is None:
        raise InvalidMessage("chain closed")
    seed = hmac.digest(chain.key, _MESSAGE_KEY_SEED, "sha256")
    chain.key = hmac.digest(chain.key, _CHAIN_KEY_SEED, "sha256")
    chain.counter += 1
    return seed


def fill_message_keys(chain: Chain, counter: int) -> None:
    """Step a receiving chain up to `counter`, keeping the key of every message passed over."""
    if chain.counter >= counter:
        return
    if counter - chain.counter > MAX_FUTURE_MESSAGES:
        raise InvalidMessage(f"over {MAX_FUTURE_MESSAGES} messages into the future")
    key = chain.key
    if key is None:
        raise InvalidMessage("chain closed")
    keys = chain.message_keys
    for n in range(chain.counter + 1, counter + 1):
        keys[n] = hmac.digest(key, _MESSAGE_KEY_SEED, "sha256")
        key = hmac.digest(key, _CHAIN_KEY_SEED, "sha256")
    chain.key = key
    chain.counter = counter
    excess = len(keys) - MAX_MESSAGE_KEYS
    if excess > 0:
        for n in list(islice(keys, excess)):
            del keys[n]


def add_chain(entry: SessionEntry, public: bytes, chain_type: ChainType, key: bytes) -> None:
    entry.chains[public] = Chain(chain_type, -1, key)


def step_ratchet(
    entry: SessionEntry, remote: bytes, previous_counter: int, new_key: KeyPair
) -> None:
    """The peer moved to ratchet key `remote`: close its last chain, derive ours anew.

    `previous_counter` is the peer's last counter on its previous chain; keys for messages up to
    it are kept so late ones still decrypt. Raises ValueError on a low-order `remote`.

    A previous counter we cannot follow (0xFFFFFFFF, libsignal-node's -1 for a chain it never
    sent on, seen when its stored state went back in time; or more than MAX_FUTURE_MESSAGES
    ahead) only costs the late messages of that chain: the chain is closed and the message
    that brought the new ratchet key still decrypts. libsignal-node refuses such a message;
    libsignal (Rust/Java) and whatsmeow do not look at the previous counter at all.
    """
    last = entry.chains.get(entry.last_remote_ratchet)
    if last is not None:
        last = last.copy()
        entry.chains[entry.last_remote_ratchet] = last
        if last.key is not None and 0 <= previous_counter - last.counter <= MAX_FUTURE_MESSAGES:
            fill_message_keys(last, previous_counter)
        last.key = None
    root, receiving = root_step(entry.root_key, entry.ratchet_key.private, remote)
    add_chain(entry, remote, ChainType.RECEIVING, receiving)
    sending = entry.chains.pop(with_key_type(entry.ratchet_key.public), None)
    if sending is not None:
        entry.previous_counter = sending.counter
    entry.ratchet_key = new_key
    entry.root_key, chain_key = root_step(root, new_key.private, remote)
    add_chain(entry, with_key_type(new_key.public), ChainType.SENDING, chain_key)
    entry.last_remote_ratchet = remote
    _trim_receiving_chains(entry)


def _trim_receiving_chains(entry: SessionEntry) -> None:
    receiving = [k for k, c in entry.chains.items() if c.chain_type is ChainType.RECEIVING]
    excess = len(receiving) - MAX_RECEIVING_CHAINS
    for key in receiving:
        if excess <= 0:
            break
        chain = entry.chains[key]
        if chain.key is None and not chain.message_keys:
            del entry.chains[key]
            excess -= 1


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding."""
    pad = _BLOCK - len(plaintext) % _BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()


def cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % _BLOCK:
        raise InvalidMessage("ciphertext is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise InvalidMessage("bad padding")
    return padded[:-pad]
