"""Which hosts webhooks may target: server/outbound.py's policy, under the webhook settings.

`WAHTTP_WEBHOOK_ALLOW` / `WAHTTP_WEBHOOK_DENY` entries are host names (`hooks.example.com`),
wildcard suffixes (`*.example.com`) or IP networks (`10.0.0.0/8`, `::1/128`), matched against
the host as given and against every address it resolves to. URLs set through the API (a
session's `webhookUrl`, `PUT .../webhook`) may not reach loopback, private, link-local or
reserved addresses unless `WAHTTP_WEBHOOK_ALLOW_PRIVATE` is true; the operator's own
`WAHTTP_WEBHOOK_URL` may, but the deny list applies to it too. URLs are checked when they are
set (a 400 `webhook_not_allowed`) and again for every connection a delivery makes.
"""

from __future__ import annotations

from wahttp.server.outbound import AddressNotAllowed, HostList, OutboundPolicy

WebhookPolicy = OutboundPolicy
WebhookPolicyError = AddressNotAllowed

__all__ = ["HostList", "WebhookPolicy", "WebhookPolicyError"]
