"""wahttp: a self-hosted WhatsApp HTTP API in pure Python."""

__version__ = "0.1.0"
