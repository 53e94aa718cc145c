"""How cutover reaches Temporal: connection errors worth reading, and the optional payload codec."""
