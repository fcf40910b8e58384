"""The REST service: sessions, webhooks and storage."""
