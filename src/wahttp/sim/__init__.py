"""The simulated WhatsApp network: server, simulated phones and admin API."""
