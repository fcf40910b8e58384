"""Which hosts webhooks may target: an allow list and a deny list, checked where URLs are set.

Entries are host names (`hooks.example.com`), wildcard suffixes (`*.example.com`) or IP networks
(`10.0.0.0/8`, `::1/128`) matched against IP-literal hosts. Matching is on the host as written
in the URL (no DNS lookup). Enforced when a URL is configured (session create, PUT webhook,
start-up for the global URL), never when an event is queued, so a policy change cannot hold
back message acknowledgements.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookPolicyError(ValueError):
    """The URL's host is not allowed by WAHTTP_WEBHOOK_ALLOW / WAHTTP_WEBHOOK_DENY."""


@dataclass(frozen=True)
class HostList:
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
                suffixes.append(entry[1:])
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.names or any(host.endswith(s) for s in self.suffixes):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address.version == n.version and address in n for n in self.networks)


@dataclass(frozen=True)
class WebhookPolicy:
    allow: HostList = field(default_factory=HostList)
    deny: HostList = field(default_factory=HostList)

    @classmethod
    def parse(cls, allow: str | None, deny: str | None) -> WebhookPolicy:
        return cls(HostList.parse(allow), HostList.parse(deny))

    def check(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if self.deny and self.deny.matches(host):
            raise WebhookPolicyError(f"webhooks to {host} are denied by WAHTTP_WEBHOOK_DENY")
        if self.allow and not self.allow.matches(host):
            raise WebhookPolicyError(f"webhooks to {host} are not in WAHTTP_WEBHOOK_ALLOW")
