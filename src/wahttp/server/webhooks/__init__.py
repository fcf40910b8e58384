"""Webhooks: signed POSTs of inbound events, delivered at least once through a PostgreSQL outbox.

Where each concern lives (README "Webhooks" is the user's view, docs/architecture.md the map):

- contract.py: the event types, the POST body, the header names, the `data` shapes;
- signing.py: secrets and the HMAC signature (`verify_signature` for receivers);
- urls.py: valid webhook URLs and where they may go (server/outbound.py's guard);
- targets.py: a session's webhook and the global one, and each URL's share of slots;
- outbox.py: `OutboxRepository`, the only code that reads or writes `webhook_outbox`;
- outcome.py: what an attempt's answer means (delivered, retry after a delay, dead), pure;
- deliverer.py: claims due rows, POSTs them, records the outcome; listener.py wakes it by
  LISTEN/NOTIFY;
- service.py: `Webhooks`, the facade the service holds.
"""

from __future__ import annotations

from wahttp.server.webhooks.contract import (
    EVENT_TYPES,
    AckData,
    CallData,
    EventType,
    MessageData,
    PictureData,
    StatusData,
    WebhookEvent,
    encode_body,
    to_millis,
)
from wahttp.server.webhooks.outbox import (
    NOTIFY_CHANNEL,
    DeliveryStatus,
    Job,
    OutboxRepository,
    enqueue,
)
from wahttp.server.webhooks.outcome import Outcome, Verdict, decide
from wahttp.server.webhooks.service import Webhooks
from wahttp.server.webhooks.signing import (
    MIN_SECRET_LENGTH,
    SIGNATURE_PREFIX,
    check_secret,
    new_secret,
    sign,
    verify_signature,
)
from wahttp.server.webhooks.targets import Target, TargetKind, WebhookConfig
from wahttp.server.webhooks.urls import (
    MAX_URL_LENGTH,
    InvalidWebhookUrl,
    WebhookPolicy,
    WebhookPolicyError,
    check_url,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_URL_LENGTH",
    "MIN_SECRET_LENGTH",
    "NOTIFY_CHANNEL",
    "SIGNATURE_PREFIX",
    "AckData",
    "CallData",
    "DeliveryStatus",
    "EventType",
    "InvalidWebhookUrl",
    "Job",
    "MessageData",
    "OutboxRepository",
    "Outcome",
    "PictureData",
    "StatusData",
    "Target",
    "TargetKind",
    "Verdict",
    "WebhookConfig",
    "WebhookEvent",
    "WebhookPolicy",
    "WebhookPolicyError",
    "Webhooks",
    "check_secret",
    "check_url",
    "decide",
    "encode_body",
    "enqueue",
    "new_secret",
    "sign",
    "to_millis",
    "verify_signature",
]
