"""A simulated phone as a full end-to-end peer: Signal keys, sessions, an inbox, receipts.

It is device 0 of its account. It encrypts with the same code as our client
(`wahttp.wa.client.e2e`), on its own in-memory auth store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wahttp.wa.auth.creds import SignedPreKey, new_creds
from wahttp.wa.auth.signal_store import SignalStore
from wahttp.wa.auth.store import MemoryAuthStore
from wahttp.wa.binary import Node
from wahttp.wa.client import e2e, messages, reporting
from wahttp.wa.crypto import KeyPair
from wahttp.wa.jid import LID, S_WHATSAPP_NET, Jid
from wahttp.wa.signal import PreKeyBundle
from wahttp.wa.signal.errors import SignalError

if TYPE_CHECKING:
    from wahttp.sim.network import Account, Device, Network
    from wahttp.sim.phone import Phone
    from wahttp.sim.routing import DeviceKey, Router

log = logging.getLogger(__name__)
PRE_KEY_BATCH = 50


@dataclass
class InboxItem:
    id: str
    chat: str
    sender: str
    from_me: bool
    kind: str
    text: str | None
    timestamp: int
    read: bool = False


@dataclass
class SentItem:
    id: str
    to: str
    text: str
    timestamp: int
    status: str = "sent"  # sent -> delivered -> read
    devices: int = 0


@dataclass
class PhonePeer:
    phone: Phone
    store: MemoryAuthStore = field(default_factory=MemoryAuthStore)
    inbox: list[InboxItem] = field(default_factory=list)
    sent: dict[str, SentItem] = field(default_factory=dict)
    public_pre_keys: dict[int, bytes] = field(default_factory=dict)
    undecryptable: int = 0
    duplicates: int = 0
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        creds = new_creds()
        creds.signed_identity_key = self.phone.identity
        creds.signed_pre_key = SignedPreKey.generate(self.phone.identity, 1)
        creds.registration_id = self.phone.registration_id
        self.creds = creds
        self.ss = SignalStore(self.store, creds)
        self.next_pre_key = 1

    @property
    def number(self) -> str:
        return self.phone.number

    async def _refill(self) -> None:
        keys = {self.next_pre_key + i: KeyPair.generate() for i in range(PRE_KEY_BATCH)}
        self.next_pre_key += PRE_KEY_BATCH
        await self.store.set(
            {
                "pre-key": {
                    str(k): {"private": v.private, "public": v.public} for k, v in keys.items()
                }
            }
        )
        self.public_pre_keys.update({k: v.public for k, v in keys.items()})

    async def bundle(self) -> PreKeyBundle:
        """The phone's bundle for a new session; each one-time pre-key is handed out once."""
        if len(self.public_pre_keys) < 5:
            await self._refill()
        key_id = next(iter(self.public_pre_keys))
        public = self.public_pre_keys.pop(key_id)
        spk = self.creds.signed_pre_key
        return PreKeyBundle(
            registration_id=self.creds.registration_id,
            device_id=0,
            identity_key=self.phone.identity.public,
            signed_pre_key_id=spk.key_id,
            signed_pre_key=spk.key_pair.public,
            signed_pre_key_signature=spk.signature,
            pre_key_id=key_id,
            pre_key=public,
        )

    # -- sending -------------------------------------------------------------------------------
    async def send_text(self, router: Router, to: Jid, text: str) -> SentItem:
        network = router.network
        target = network.account_by_user(to.user)
        if target is None:
            raise LookupError(f"{to} is not on the simulated network")
        me: DeviceKey = (self.number, 0)
        message = messages.text_message(text)
        message_id = messages.new_message_id()
        chat = Jid(target.number, S_WHATSAPP_NET)
        own = network.accounts[self.number]
        keys = [(target.number, d) for d in [0, *target.devices]]
        keys += [(self.number, d) for d in own.devices if (self.number, d) not in keys]
        item = SentItem(message_id, str(chat), text, int(time.time()))
        self.sent[message_id] = item
        if target.number != self.number:  # who hears of this phone's changes (sim/account.py)
            router.contacts.setdefault(self.number, set()).add(target.number)
            router.contacts.setdefault(target.number, set()).add(self.number)
        # A phone that writes to someone lets them write back: its privacy token goes first.
        await network.privacy.issue_on_contact(router, self.number, target.number)
        router.remember_origin(message_id, me)
        for key in keys:
            if key == me:
                continue
            payload = messages.device_sent(str(chat), message) if key[0] == self.number else message
            stanza = await self._encrypt_stanza(router, key, message_id, payload, chat)
            if stanza is not None:
                await router.deliver(key, stanza)
                item.devices += 1
        return item

    async def send_to_own_device(
        self, router: Router, device_id: int, message: messages.Message
    ) -> bool:
        """A peer message (category="peer") to one of our companions: key shares and the like."""
        message_id = messages.new_message_id()
        chat = Jid(self.number, S_WHATSAPP_NET)
        key: DeviceKey = (self.number, device_id)
        stanza = await self._encrypt_stanza(router, key, message_id, message, chat)
        if stanza is None:
            return False
        stanza.attrs["category"] = "peer"
        stanza.attrs["type"] = "protocol"
        stanza.attrs.pop("recipient", None)
        stanza.attrs["push_priority"] = "high_force"
        router.remember_origin(message_id, (self.number, 0))
        await router.deliver(key, stanza)
        return True

    async def _encrypt_stanza(
        self, router: Router, key: DeviceKey, message_id: str, payload: messages.Message, chat: Jid
    ) -> Node | None:
        device_jid = router.device_jid(key)
        address = await self.ss.address(device_jid)
        if not await self.ss.has_sessions([address]):
            bundle = await bundle_for(router.network, key)
            if bundle is None:
                return None
            await e2e.start_session(self.ss, device_jid, bundle)
        kind, ciphertext = await e2e.encrypt_for(
            self.ss, device_jid, messages.pad(payload.SerializeToString())
        )
        attrs = {
            "from": str(Jid(self.number, S_WHATSAPP_NET)),
            "id": message_id,
            "t": str(int(time.time())),
            "type": "text",
            "notify": self.phone.push_name,
            "sender_lid": str(Jid(self.phone.lid_user, LID)),
        }
        if key[0] == self.number:
            attrs["recipient"] = str(chat)
        return Node("message", attrs, [Node("enc", {"v": "2", "type": kind}, ciphertext)])

    # -- receiving -----------------------------------------------------------------------------
    async def receive(self, router: Router, stanza: Node) -> None:
        if stanza.tag == "message":
            await self._on_message(router, stanza)
        elif stanza.tag == "receipt":
            self._on_receipt(stanza)

    async def _on_message(self, router: Router, stanza: Node) -> None:
        sender = stanza.attr_jid("from")
        enc = stanza.child("enc")
        if sender is None or enc is None or enc.content_bytes() is None:
            return
        message_id = stanza.attr("id") or ""
        if (str(sender.to_non_ad()), message_id) in self._seen:
            # A redelivery (the sender or the server retried): a phone shows a message once.
            self.duplicates += 1
            await self._receipt(router, message_id, sender, None)
            return
        try:
            decrypted = await e2e.decrypt_from(
                self.ss, sender, enc.attr("type") or "", enc.content_bytes() or b""
            )
            message = messages.parse(decrypted.plaintext)
            await decrypted.commit()
        except (SignalError, messages.PayloadError) as exc:
            self.undecryptable += 1
            log.warning("phone %s cannot decrypt %s: %s", self.number, message_id, exc)
            return
        self._seen.add((str(sender.to_non_ad()), message_id))
        from_me = sender.user == self.number
        if not from_me:
            _check_reporting(router, message_id, messages.unpad(decrypted.plaintext), message)
        if not from_me:
            contact = router.network.account_by_user(sender.user)
            if contact is not None:
                await router.network.privacy.issue_on_contact(router, self.number, contact.number)
        if from_me and _is_key_request(message):
            # One of our companions lacks app-state keys: answer with those we have.
            await self._answer_key_request(router, sender, message)
            await self._receipt(router, message_id, sender, "peer_msg")
            return
        chat = stanza.attr("recipient") if from_me else str(sender.to_non_ad())
        if message.HasField("deviceSentMessage"):
            chat = message.deviceSentMessage.destinationJid or chat
            message = message.deviceSentMessage.message
        content = messages.content_of(message)
        self.inbox.append(
            InboxItem(
                stanza.attr("id") or "",
                chat or "",
                str(sender),
                from_me,
                content.kind,
                content.text,
                stanza.attr_int("t", int(time.time())),
            )
        )
        # A copy of our own account's message is acknowledged as "sender", not as delivered.
        await self._receipt(router, stanza.attr("id") or "", sender, "sender" if from_me else None)

    async def _answer_key_request(
        self, router: Router, sender: Jid, message: messages.Message
    ) -> None:
        """APP_STATE_SYNC_KEY_REQUEST from a companion: recorded, then answered with a key
        share of the asked keys this phone has (peer message to that device only)."""
        account = router.network.accounts.get(self.number)
        device_id = sender.device or 0
        if account is None or device_id not in account.devices:
            return
        ids = [k.keyId for k in message.protocolMessage.appStateSyncKeyRequest.keyIds]
        account.app_state.key_requests.append((device_id, ids))
        share = account.app_state.key_share(ids)
        log.info(
            "phone %s: device %d asked for %d app-state key(s), has %d",
            self.number,
            device_id,
            len(ids),
            len(share.protocolMessage.appStateSyncKeyShare.keys),
        )
        if share.protocolMessage.appStateSyncKeyShare.keys:
            await self.send_to_own_device(router, device_id, share)

    async def _receipt(
        self, router: Router, message_id: str, sender: Jid, kind: str | None
    ) -> None:
        attrs = {"id": message_id, "to": str(sender)}
        if kind:
            attrs["type"] = kind
        await router.route_receipt((self.number, 0), Node("receipt", attrs))

    def _on_receipt(self, stanza: Node) -> None:
        item = self.sent.get(stanza.attr("id") or "")
        if item is None:
            return
        kind = stanza.attr("type") or ""
        if kind in ("read", "read-self", "played"):
            item.status = "read"
        elif kind in ("", "inactive") and item.status == "sent":
            item.status = "delivered"

    async def mark_read(self, router: Router, message_id: str) -> bool:
        for item in self.inbox:
            if item.id == message_id and not item.from_me:
                item.read = True
                await self._receipt(router, message_id, Jid.parse(item.sender), "read")
                return True
        return False

    def inbox_json(self) -> list[dict[str, Any]]:
        return [vars(i).copy() for i in self.inbox]


def _is_key_request(message: messages.Message) -> bool:
    proto = message.protocolMessage
    return (
        message.HasField("protocolMessage")
        and proto.type == messages.Message.ProtocolMessage.APP_STATE_SYNC_KEY_REQUEST
    )


def _check_reporting(router: Router, message_id: str, encoded: bytes, message: Any) -> None:
    """Check the reporting token the sender attached against the decrypted message."""
    sent = router.reporting_tokens.pop(message_id, None)
    if sent is None:
        if reporting.should_include(message):
            router.reporting["missing"] += 1
        return
    to, token = sent
    ok = reporting.valid(token, encoded, message_id, to)
    router.reporting["valid" if ok else "invalid"] += 1
    if not ok:
        log.warning("reporting token of %s does not match its message", message_id)


async def bundle_for(network: Network, key: DeviceKey) -> PreKeyBundle | None:
    """A device's pre-key bundle, consuming one of its one-time pre-keys."""
    account = network.accounts.get(key[0])
    if account is None:
        return None
    if key[1] == 0:
        return await account.phone_peer.bundle()
    device = account.devices.get(key[1])
    return device_bundle(device) if device is not None else None


def device_bundle(device: Device) -> PreKeyBundle:
    spk = device.signed_pre_key
    pre_key_id = next(iter(device.pre_keys), None)
    public = device.pre_keys.pop(pre_key_id) if pre_key_id is not None else None
    return PreKeyBundle(
        registration_id=device.registration_id,
        device_id=device.device_id,
        identity_key=device.identity_public,
        signed_pre_key_id=spk.key_id,
        signed_pre_key=spk.public,
        signed_pre_key_signature=spk.signature,
        pre_key_id=pre_key_id,
        pre_key=public,
    )


def account_devices(account: Account) -> list[int]:
    return [0, *account.devices]
