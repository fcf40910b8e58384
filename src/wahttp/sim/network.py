"""The simulated network's state: accounts (a phone each), linked devices, live connections."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wahttp.sim.phone import Phone
from wahttp.sim.privacy import PrivacyTokens
from wahttp.wa.jid import Jid

if TYPE_CHECKING:
    from wahttp.sim.appstate import PhoneAppState
    from wahttp.sim.calls import Call
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.pair_code import CodeRequest
    from wahttp.sim.phone_peer import PhonePeer


@dataclass
class SignedPreKeyRecord:
    key_id: int
    public: bytes
    signature: bytes


@dataclass
class Device:
    """A companion device linked to an account, as the server knows it."""

    number: str
    device_id: int
    lid_user: str
    noise_public: bytes
    identity_public: bytes
    registration_id: int
    signed_pre_key: SignedPreKeyRecord
    key_index: int
    pre_keys: dict[int, bytes] = field(default_factory=dict)
    push_name: str | None = None

    @property
    def jid(self) -> Jid:
        return Jid(self.number, "s.whatsapp.net", self.device_id)

    @property
    def lid(self) -> Jid:
        return Jid(self.lid_user, "lid", self.device_id)


@dataclass
class Account:
    phone: Phone
    devices: dict[int, Device] = field(default_factory=dict)
    next_device_id: int = 1
    # A trusting account takes a first message without its privacy token (see privacy.py).
    trusting: bool = True
    phone_peer: PhonePeer = field(init=False)
    app_state: PhoneAppState = field(init=False)

    def __post_init__(self) -> None:
        from wahttp.sim.appstate import PhoneAppState
        from wahttp.sim.phone_peer import PhonePeer

        self.phone_peer = PhonePeer(self.phone)
        self.app_state = PhoneAppState()

    @property
    def number(self) -> str:
        return self.phone.number


class Network:
    """Everything the simulated server knows. Single event loop: no locks needed."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.by_lid: dict[str, str] = {}  # lid user -> phone number
        self.connections: dict[str, ServerConnection] = {}  # device JID string -> connection
        self.registrations: dict[str, ServerConnection] = {}  # QR ref -> unlinked connection
        self.code_requests: dict[int, CodeRequest] = {}  # connection id -> pairing-code request
        self.privacy = PrivacyTokens()  # privacy tokens issued and the AB props served
        self.calls: dict[str, Call] = {}  # call id -> call (calls.py)
        # (number, device id) of companions an account_sync waits for: <ib><dirty> at login
        self.dirty: set[tuple[str, int]] = set()
        self.cleaned = 0  # dirty flags a client cleared with <clean>
        self.last_clean: dict[str, str] | None = None  # the last <clean>: device, type, timestamp
        self.reregistered = 0  # phones that registered again (a new identity)

    def create_account(
        self, number: str | None = None, push_name: str | None = None, *, trusting: bool = True
    ) -> Account:
        number = number or self._free_number()
        if number in self.accounts:
            raise ValueError(f"account {number} exists already")
        lid_user = str(10**14 + secrets.randbelow(9 * 10**14))
        phone = Phone(number=number, lid_user=lid_user, push_name=push_name or f"Phone {number}")
        account = Account(phone, trusting=trusting)
        self.accounts[number] = account
        self.by_lid[lid_user] = number
        return account

    def account_by_user(self, user: str) -> Account | None:
        """The account of a PN number or a LID user."""
        account = self.accounts.get(user)
        if account is None and user in self.by_lid:
            account = self.accounts.get(self.by_lid[user])
        return account

    def _free_number(self) -> str:
        while True:
            number = "1555" + str(secrets.randbelow(10**7)).zfill(7)
            if number not in self.accounts:
                return number

    def device(self, number: str, device_id: int) -> Device | None:
        account = self.accounts.get(number)
        return account.devices.get(device_id) if account else None

    def add_device(self, account: Account, device: Device) -> None:
        account.devices[device.device_id] = device

    def remove_device(self, number: str, device_id: int) -> Device | None:
        account = self.accounts.get(number)
        return account.devices.pop(device_id, None) if account else None
