"""Thin Temporal activities over the providers: argument models in, result models out, typed errors."""
