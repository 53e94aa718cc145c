"""DNS providers: RFC 2136 (dnspython + TSIG) and Google Cloud DNS (REST), behind one interface."""
