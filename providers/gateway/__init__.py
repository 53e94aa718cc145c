"""Gateway clients: the Kong Admin API."""
