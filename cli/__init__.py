"""Command-line pieces behind ``starter.py``: one module per command family (watch, campaign, ...)."""
