"""Which webhook URLs are valid and where they may go: server/outbound.py's guard, for webhooks.

`WAHTTP_WEBHOOK_ALLOW` / `WAHTTP_WEBHOOK_DENY` entries are host names (`hooks.example.com`),
wildcard suffixes (`*.example.com`) or IP networks (`10.0.0.0/8`, `::1/128`), matched against
the host as given and against every address it resolves to. URLs set through the API (a
session's `webhookUrl`, `PUT .../webhook`) may not reach loopback, private, link-local or
reserved addresses unless `WAHTTP_WEBHOOK_ALLOW_PRIVATE` is true; the operator's own
`WAHTTP_WEBHOOK_URL` may, but the deny list applies to it too. URLs are checked when they are
set (a 400 `webhook_not_allowed`) and again for every connection a delivery makes (the
deliverer's guarded clients), so a changed DNS answer cannot reach a refused address.
"""

from __future__ import annotations

from wahttp.server.outbound import (
    MAX_URL_LENGTH,
    AddressNotAllowed,
    HostList,
    InvalidOutboundUrl,
    OutboundPolicy,
    parse_url,
)

WebhookPolicy = OutboundPolicy
WebhookPolicyError = AddressNotAllowed

__all__ = [
    "MAX_URL_LENGTH",
    "HostList",
    "InvalidWebhookUrl",
    "WebhookPolicy",
    "WebhookPolicyError",
    "check_url",
]


class InvalidWebhookUrl(InvalidOutboundUrl):
    """A webhook URL that is not an absolute http(s) URL with a host."""


def check_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a valid host; InvalidWebhookUrl if not.

    Syntax only (outbound.parse_url): where it may go is `Webhooks.check_target`'s question.
    """
    try:
        parse_url(url, max_length=MAX_URL_LENGTH)
    except InvalidOutboundUrl as exc:
        raise InvalidWebhookUrl(str(exc).replace("the URL", "the webhook URL", 1)) from None
    return url
