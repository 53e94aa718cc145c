"""Local fakes of Google APIs, checked against Google's discovery documents."""
