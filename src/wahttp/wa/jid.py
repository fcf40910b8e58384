"""WhatsApp JIDs (`user[_agent][:device]@server`), formatted and parsed exactly like Baileys.

The only place in wahttp that splits or joins JID strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

S_WHATSAPP_NET = "s.whatsapp.net"
LID = "lid"
GROUP = "g.us"
BROADCAST = "broadcast"
HOSTED = "hosted"
HOSTED_LID = "hosted.lid"
NEWSLETTER = "newsletter"
CALL = "call"
C_US = "c.us"

# Baileys' WAJIDDomains: the "domain type" byte of an AD_JID on the wire.
DOMAIN_WHATSAPP = 0
DOMAIN_LID = 1
DOMAIN_HOSTED = 128
DOMAIN_HOSTED_LID = 129

# The server implied by a domain type; anything else means s.whatsapp.net.
SERVER_FOR_DOMAIN: dict[int, str] = {
    DOMAIN_LID: LID,
    DOMAIN_HOSTED: HOSTED,
    DOMAIN_HOSTED_LID: HOSTED_LID,
}
# Servers that force the domain type regardless of any `_agent` in the user part.
DOMAIN_FOR_SERVER: dict[str, int] = {server: dt for dt, server in SERVER_FOR_DOMAIN.items()}

_USER_SERVERS = frozenset({S_WHATSAPP_NET, LID, HOSTED, HOSTED_LID})
_HOSTED_SERVERS = frozenset({HOSTED, HOSTED_LID})
_MAX_NUMBER_DIGITS = 10  # devices and agents are small; refuse absurd digit strings


def _small_number(text: str) -> int:
    """Parse a plain decimal field (ASCII digits only) or raise ValueError."""
    if not text or len(text) > _MAX_NUMBER_DIGITS or not (text.isascii() and text.isdigit()):
        raise ValueError(f"invalid number in JID: {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Jid:
    """A parsed JID; `device=None` means no device part, `agent` is Baileys' domainType/agent."""

    user: str
    server: str
    device: int | None = None
    agent: int = 0

    @classmethod
    def parse(cls, text: str) -> Jid:
        """Parse `user[_agent][:device]@server`; raise ValueError for anything malformed."""
        user_part, at, server = text.partition("@")
        if not at or not server or "@" in server:
            raise ValueError(f"not a JID: {text!r}")
        user_agent, colon, device_text = user_part.partition(":")
        device = _small_number(device_text) if colon else None
        user, underscore, agent_text = user_agent.partition("_")
        agent = _small_number(agent_text) if underscore else 0
        return cls(user, server, device, agent)

    def __str__(self) -> str:
        # Mirrors Baileys' jidEncode: agent 0 and device 0 are not printed.
        agent = f"_{self.agent}" if self.agent else ""
        device = f":{self.device}" if self.device else ""
        return f"{self.user}{agent}{device}@{self.server}"

    @classmethod
    def user_jid(cls, number: str) -> Jid:
        """The phone-number JID `<digits>@s.whatsapp.net` (a leading '+' is dropped)."""
        digits = number.removeprefix("+")
        if not digits or not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"not a phone number: {number!r}")
        return cls(digits, S_WHATSAPP_NET)

    @classmethod
    def server_jid(cls) -> Jid:
        """The WhatsApp server itself: `@s.whatsapp.net` (empty user)."""
        return cls("", S_WHATSAPP_NET)

    @property
    def domain_type(self) -> int:
        """Baileys' domainType: implied by lid/hosted servers, else the agent."""
        return DOMAIN_FOR_SERVER.get(self.server, self.agent)

    def to_non_ad(self) -> Jid:
        """The same account without device and agent (Baileys' jidNormalizedUser sans c.us)."""
        if self.device is None and not self.agent:
            return self
        return Jid(self.user, self.server)

    def with_device(self, device: int) -> Jid:
        return Jid(self.user, self.server, device, self.agent)

    def is_pn(self) -> bool:
        return self.server == S_WHATSAPP_NET

    def is_lid(self) -> bool:
        return self.server == LID

    def is_hosted(self) -> bool:
        return self.server in _HOSTED_SERVERS

    def is_user(self) -> bool:
        """A person's account (PN, LID or hosted), not a group, broadcast or the server."""
        return bool(self.user) and self.server in _USER_SERVERS

    def is_group(self) -> bool:
        return self.server == GROUP

    def is_broadcast(self) -> bool:
        return self.server == BROADCAST

    def is_status_broadcast(self) -> bool:
        return self.server == BROADCAST and self.user == "status"

    def is_newsletter(self) -> bool:
        return self.server == NEWSLETTER

    def signal_address(self) -> str:
        """Signal session address, as Baileys 7's jidToSignalProtocolAddress(...).toString()."""
        if not self.user:
            raise ValueError(f"JID has no user for a signal address: {self}")
        if self.device == 99 and self.server not in _HOSTED_SERVERS:
            raise ValueError(f"device 99 on a non-hosted JID: {self}")
        domain = self.domain_type
        name = f"{self.user}_{domain}" if domain else self.user
        return f"{name}.{self.device or 0}"


# --- Lenient split used by the binary encoder -------------------------------------------
# Baileys' encoder runs jidDecode() on every string containing '@' and writes the result,
# converting the device with Number() and the agent with parseInt() and truncating both to a
# byte. To stay byte-identical we reproduce those JavaScript conversions for any input.


class WireJid(NamedTuple):
    """A string split the way Baileys' encoder sees it; device None selects JID_PAIR."""

    user: str
    server: str
    domain_type: int  # already reduced to a byte
    device: int | None  # already reduced to a byte


_JS_WHITESPACE = (
    "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_PREFIXED = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
_JS_RADIX_DIGITS = {
    16: re.compile(r"[0-9a-fA-F]+"),
    8: re.compile(r"[0-7]+"),
    2: re.compile(r"[01]+"),
}
_JS_INT_DIGITS = {10: re.compile(r"[0-9]*"), 16: re.compile(r"[0-9a-fA-F]*")}


def _js_byte(value: float | int) -> int:
    """`value & 0xff` in JavaScript: ToInt32 (NaN/Infinity -> 0) then the low byte."""
    try:
        number = float(value)
    except OverflowError:
        return 0
    if not math.isfinite(number):
        return 0
    return int(number) % 256


def _js_number_byte(text: str) -> int:
    """`(+text) & 0xff` for a non-empty string; unparseable text is NaN, i.e. 0."""
    trimmed = text.strip(_JS_WHITESPACE)
    if not trimmed:
        return 0
    radix = _JS_PREFIXED.get(trimmed[:2])
    if radix is not None:
        digits = trimmed[2:]
        if not _JS_RADIX_DIGITS[radix].fullmatch(digits):
            return 0
        try:
            return _js_byte(int(digits, radix))
        except ValueError:  # too many digits for int(): Infinity in JS
            return 0
    if _JS_DECIMAL.fullmatch(trimmed):
        return _js_byte(float(trimmed))
    return 0


def _js_parse_int_byte(text: str) -> int:
    """`parseInt(text) & 0xff` (no radix): leading digits only, '0x' selects hex."""
    rest = text.lstrip(_JS_WHITESPACE)
    sign = -1 if rest[:1] == "-" else 1
    if rest[:1] in ("+", "-"):
        rest = rest[1:]
    radix = 10
    if rest[:2] in ("0x", "0X"):
        radix, rest = 16, rest[2:]
    match = _JS_INT_DIGITS[radix].match(rest)
    digits = match.group() if match else ""
    if not digits:
        return 0
    try:
        return _js_byte(sign * int(digits, radix))
    except ValueError:  # more digits than int() accepts: certainly Infinity in JS
        return 0


def split_wire_jid(text: str) -> WireJid | None:
    """Split like Baileys' jidDecode (None without '@'); only the binary encoder needs this."""
    user_part, at, server = text.partition("@")
    if not at:
        return None
    parts = user_part.split(":")
    user_agent = parts[0]
    device_text = parts[1] if len(parts) > 1 else ""
    pieces = user_agent.split("_")
    user = pieces[0]
    agent_text = pieces[1] if len(pieces) > 1 else ""
    domain = DOMAIN_FOR_SERVER.get(server)
    if domain is None:
        domain = _js_parse_int_byte(agent_text) if agent_text else 0
    device = _js_number_byte(device_text) if device_text else None
    return WireJid(user, server, domain, device)
