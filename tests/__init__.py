"""cutover tests."""
