"""Outbound requests to URLs someone else chose: one guard against server-side request forgery.

Webhooks use it today (a tenant sets a URL; the service POSTs to it), and anything else that
fetches a client-given URL is to use it too. Three parts:

- `parse_url`: a strict parse. http and https only, a host, no user info, no control
  characters; the host normalised as a socket would see it: lower case, IDNA (with the
  ideographic and fullwidth dots `。．｡` taken as dots, fullwidth letters and digits folded),
  no trailing dot, and numeric IPv4 forms (`2130706433`, `0x7f000001`, `127.1`,
  `017700000001`, `0`) made canonical (`127.0.0.1`), as `inet_aton` reads them.
- `OutboundPolicy`: which addresses may be reached. Unless `allow_internal` is set, every
  address that is not public is refused: loopback (127/8, ::1), "this network" 0/8 and ::,
  link-local (169.254/16 with the cloud metadata service, fe80::/10), private (10/8,
  172.16/12, 192.168/16, fc00::/7), shared CGNAT space 100.64/10, multicast, reserved and
  documentation ranges, site-local fec0::/10. An IPv4-mapped address (::ffff:0:0/96) is
  judged as the IPv4 address it carries, a 6to4 one (2002::/16) is refused when its IPv4
  address is, and IPv4-compatible (::/96) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48) forms are
  refused altogether. The operator's deny list (names,
  `*.suffixes`, networks) refuses a host by its name or by any of its addresses. An allow
  list, when set, admits only the names it lists and IP-literal hosts in its networks; a
  network in the allow list also admits addresses (of a literal or of a listed name) that the
  internal rule would refuse, so `WAHTTP_WEBHOOK_ALLOW=hooks.lan,10.1.0.0/16` lets API-set
  URLs reach hooks.lan at 10.1.2.3 without allowing every private address.
- `OutboundGuard`: the policy plus a resolver. `check(url)` resolves the host (getaddrinfo
  through the event loop: what the socket would connect to) and checks every address;
  `connect_addresses(host, port)` does the same for one connection. `guarded_client` builds
  an httpx client whose every new connection goes through the guard and then to exactly the
  address that was checked (TLS still verifies, and SNI still names, the host), so a DNS
  answer that changes between a check and the request, or a URL stored before the policy,
  cannot reach a refused address. A refused connection is never attempted: the error says
  "address not allowed" and never depends on whether a port is open. Proxies from the
  environment are not used (a proxy would connect where the guard cannot see).

Errors never name the resolved addresses (they would tell a tenant what internal names
resolve to), only the host as it was given.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses a connection to it would use.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0
NOT_ALLOWED = "address not allowed"

_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_NUMERIC_PART = frozenset("0123456789abcdefx")

# Ranges refused unless allow_internal, beyond what ipaddress calls not global.
_ALSO_INTERNAL: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # IPv4-compatible (deprecated), and :: and ::1
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(ValueError):
    """A URL the guard refuses (its message is safe to show to whoever gave the URL)."""


class InvalidOutboundUrl(OutboundError):
    """Not an absolute http(s) URL with a usable host."""


class AddressNotAllowed(OutboundError):
    """The host, or an address it resolves to, is not allowed by the policy."""


# -- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    url: str
    scheme: str
    host: str  # normalised: ASCII, lower case, no trailing dot, canonical if an IP address
    port: int

    @property
    def address(self) -> Address | None:
        """The host as an IP address, if it is one."""
        return _ip(self.host)


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    """The host as a socket would see it (see the module docstring); InvalidOutboundUrl if bad."""
    host = host.strip().translate(_DOTS)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:  # an IPv6 literal (urlsplit gives it without brackets); no zone
        address = None if "%" in host else _ip(host)
        if address is None:
            raise InvalidOutboundUrl("the URL's host is not a valid IPv6 address")
        return str(address)
    if not host.isascii():
        host = unicodedata.normalize("NFKC", host)
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidOutboundUrl("the URL's host is not a valid domain name") from None
    host = host.lower().rstrip(".")
    if not host or any(not (c.isalnum() or c in "-._") for c in host):
        raise InvalidOutboundUrl("the URL's host is not a valid domain name")
    parts = host.split(".")
    if all(p and set(p) <= _NUMERIC_PART and (p[0].isdigit()) for p in parts):
        # Every label numeric (decimal, octal, hex): an IPv4 address in one of inet_aton's
        # forms, or nothing a resolver would take as a name.
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            raise InvalidOutboundUrl("the URL's host is not a valid IPv4 address") from None
    return host


def parse_url(url: str, *, max_length: int = MAX_URL_LENGTH) -> ParsedUrl:
    """A strict parse of an http(s) URL; InvalidOutboundUrl with the reason if it is not one."""
    if len(url.encode("utf-8", "surrogatepass")) > max_length:
        raise InvalidOutboundUrl(f"the URL is longer than {max_length} bytes")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        raise InvalidOutboundUrl("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise InvalidOutboundUrl(f"the URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidOutboundUrl("the URL must start with http:// or https://")
    if not host:
        raise InvalidOutboundUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidOutboundUrl("the URL must not contain a user name or password")
    if port == 0:
        raise InvalidOutboundUrl("the URL's port must be from 1 to 65535")
    return ParsedUrl(url, scheme, normalise_host(host), port or (443 if scheme == "https" else 80))


# -- the policy ----------------------------------------------------------------------------------


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal(address: Address) -> bool:
    """Whether an address is anything but a public unicast one (see the module docstring)."""
    inner = embedded_ipv4(address)
    if inner is not None and is_internal(inner):
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False  # a socket reaches exactly the IPv4 address, which is public
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address.version == n.version and address in n for n in _ALSO_INTERNAL)
    )


@dataclass(frozen=True)
class HostList:
    """Host names, `*.suffixes` and IP networks (WAHTTP_WEBHOOK_ALLOW / _DENY entries)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = field(default=())

    @classmethod
    def parse(cls, text: str | None) -> HostList:
        names, suffixes, networks = set(), [], []
        for raw in (text or "").replace(";", ",").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry.startswith("*."):
                suffixes.append("." + _name(entry[2:]))
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(_name(entry))
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def matches_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def matches_address(self, address: Address) -> bool:
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)

    def matches(self, host: str) -> bool:
        """The host as written (a name, or an IP literal) is in the list."""
        try:
            host = normalise_host(host)
        except InvalidOutboundUrl:
            return False
        address = _ip(host)
        return self.matches_name(host) or (address is not None and self.matches_address(address))


def _name(entry: str) -> str:
    try:
        return normalise_host(entry)
    except InvalidOutboundUrl:
        return entry.rstrip(".")


@dataclass(frozen=True)
class OutboundPolicy:
    """Which hosts and addresses outbound requests may reach (see the module docstring).

    `allow_internal`: loopback, private, link-local, ... addresses are allowed too (the
    operator's own URLs, or WAHTTP_WEBHOOK_ALLOW_PRIVATE). `label` names the setting in errors.
    """

    allow: HostList = field(default_factory=HostList)
    deny: HostList = field(default_factory=HostList)
    allow_internal: bool = False
    label: str = "WAHTTP_WEBHOOK"

    @classmethod
    def parse(
        cls, allow: str | None, deny: str | None, *, allow_internal: bool = False
    ) -> OutboundPolicy:
        return cls(HostList.parse(allow), HostList.parse(deny), allow_internal)

    def operator(self) -> OutboundPolicy:
        """The same lists for URLs the operator set: internal addresses allowed."""
        return replace(self, allow_internal=True)

    @property
    def needs_addresses(self) -> bool:
        """Whether a host's addresses matter (False: any address passes, no lookup needed).

        Allow-list networks never need a lookup: a name passes the allow list by its name
        (see check_name), an IP literal by its networks.
        """
        return not self.allow_internal or bool(self.deny.networks)

    def check_name(self, host: str) -> None:
        """The checks on the (normalised) host itself, before any lookup."""
        if self.deny.matches_name(host):
            raise AddressNotAllowed(f"{NOT_ALLOWED}: {host} is denied by {self.label}_DENY")
        address = _ip(host)
        if address is not None:
            self.check_addresses(host, [address])
        elif self.allow and not self.allow.matches_name(host):
            raise AddressNotAllowed(f"{NOT_ALLOWED}: {host} is not in {self.label}_ALLOW")

    def check_addresses(self, host: str, addresses: Iterable[Address]) -> None:
        """Every address the host resolves to must be allowed (AddressNotAllowed if not)."""
        named = bool(self.allow) and self.allow.matches_name(host)
        for address in addresses:
            if self.deny.matches_address(address):
                raise AddressNotAllowed(f"{NOT_ALLOWED}: {host} is denied by {self.label}_DENY")
            listed = bool(self.allow.networks) and self.allow.matches_address(address)
            if self.allow and not (named or listed):
                raise AddressNotAllowed(f"{NOT_ALLOWED}: {host} is not in {self.label}_ALLOW")
            if not self.allow_internal and not listed and is_internal(address):
                raise AddressNotAllowed(
                    f"{NOT_ALLOWED}: {host} is, or resolves to, a loopback, private,"
                    " link-local or reserved address (see WAHTTP_WEBHOOK_ALLOW_PRIVATE)"
                )

    def check(self, url: str) -> ParsedUrl:
        """The parse and the checks that need no lookup (names, IP literals)."""
        parsed = parse_url(url)
        self.check_name(parsed.host)
        return parsed


# -- the guard -----------------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for a TCP connection to host:port."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL the guard let through, with the addresses it checked (empty: none looked up)."""

    parsed: ParsedUrl
    addresses: tuple[Address, ...]

    def __repr__(self) -> str:  # the URL may hold a token
        return f"CheckedTarget(host={self.parsed.host!r}, addresses={len(self.addresses)})"


class OutboundGuard:
    """An OutboundPolicy with a resolver: checks URLs and each connection's addresses."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        resolve_timeout: float = RESOLVE_TIMEOUT,
    ) -> None:
        self.policy = policy
        self._resolve = resolver or system_resolver
        self.resolve_timeout = resolve_timeout

    def __repr__(self) -> str:
        return f"OutboundGuard(allow_internal={self.policy.allow_internal})"

    async def addresses(self, host: str, port: int) -> list[Address]:
        """The host's addresses (itself if an IP literal); InvalidOutboundUrl if none."""
        literal = _ip(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self.resolve_timeout):
                raw = await self._resolve(host, port)
        except (OSError, TimeoutError, UnicodeError):
            raise InvalidOutboundUrl(f"cannot resolve the host {host}") from None
        found: list[Address] = []
        for text in raw:
            address = _ip(text.split("%", 1)[0])
            if address is None:
                raise InvalidOutboundUrl(f"cannot resolve the host {host}")
            if "%" in text:  # a zone: only link-local addresses have one
                raise AddressNotAllowed(f"{NOT_ALLOWED}: {host} resolves to a scoped address")
            if address not in found:
                found.append(address)
        if not found:
            raise InvalidOutboundUrl(f"cannot resolve the host {host}")
        return found

    async def connect_addresses(self, host: str, port: int) -> list[Address]:
        """The checked addresses to connect to for host:port (AddressNotAllowed if any is not
        allowed: a name with one bad address is refused as a whole)."""
        host = normalise_host(host)
        self.policy.check_name(host)
        addresses = await self.addresses(host, port)
        self.policy.check_addresses(host, addresses)
        return addresses

    async def check(self, url: str) -> CheckedTarget:
        """Parse and check a URL, resolving its host when the policy needs its addresses."""
        parsed = self.policy.check(url)
        if not self.policy.needs_addresses or parsed.address is not None:
            return CheckedTarget(parsed, () if parsed.address is None else (parsed.address,))
        addresses = await self.addresses(parsed.host, parsed.port)
        self.policy.check_addresses(parsed.host, addresses)
        return CheckedTarget(parsed, tuple(addresses))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks each new connection's addresses with the guard
    and connects only to an address it checked (the first that answers)."""

    def __init__(
        self, guard: OutboundGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._guard.policy.needs_addresses:
            targets = [str(a) for a in await self._guard.connect_addresses(host, port)]
        else:
            self._guard.policy.check_name(normalise_host(host))
            targets = [host]
        error: Exception | None = None
        for target in targets:
            try:
                return await self._inner.connect_tcp(
                    target, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed(f"{NOT_ALLOWED}: unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a GuardedBackend (no proxies)."""

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard, backend),
        )


def guarded_client(
    guard: OutboundGuard,
    *,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
    **options: Any,
) -> httpx.AsyncClient:
    """An httpx client whose connections all pass the guard; redirects are never followed
    (each hop would be a new URL to check: the caller gets the 3xx)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, verify=verify, limits=limits),
        follow_redirects=False,
        trust_env=False,
        **options,
    )
