"""The WhatsApp Web multi-device protocol: codec, Noise, Signal and the client."""
