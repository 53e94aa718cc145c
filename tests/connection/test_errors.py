"""The connect-failure sentence names the setting to fix, whichever way the transport words a hang-up."""

from __future__ import annotations

import pytest
from temporalio.service import TLSConfig

from connection.errors import describe_connect_failure

TARGET = "127.0.0.1:7233 (mTLS)"
# The shapes the SDK's native client has produced for a TLS 1.3 server hanging up on a client that sent no
# certificate (the first one seen in CI: the error kind, no words with spaces).
RESET_KIND = (
    'Failed client connect: Server connection error: Status { code: Unavailable, message: "transport error", '
    "source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Kind(ConnectionReset)))) }"
)
RESET_WORDS = "Failed client connect: transport error: Connection reset by peer (os error 104)"
EOF_WORDS = "Failed client connect: transport error: peer closed connection without sending TLS close_notify"


@pytest.mark.parametrize("detail", [RESET_KIND, RESET_WORDS, EOF_WORDS])
def test_a_hang_up_after_the_handshake_without_a_certificate_names_mtls(detail):
    message = describe_connect_failure(TARGET, True, detail)
    assert "requires a client certificate (mTLS)" in message
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH" in message


@pytest.mark.parametrize("detail", [RESET_KIND, RESET_WORDS])
def test_a_hang_up_with_a_certificate_says_the_certificate_was_refused(detail):
    tls = TLSConfig(client_cert=b"cert", client_private_key=b"key")
    message = describe_connect_failure(TARGET, tls, detail)
    assert "refused this client certificate" in message and "requires a client certificate" not in message


def test_a_hang_up_without_tls_does_not_blame_certificates():
    message = describe_connect_failure("127.0.0.1:7233", False, RESET_KIND)
    assert "certificate" not in message.split(". Detail:")[0]
    assert "TEMPORAL_TLS=true" in message


def test_a_named_cause_wins_over_the_hang_up():
    detail = RESET_WORDS + " invalid peer certificate: UnknownIssuer"
    message = describe_connect_failure(TARGET, True, detail)
    assert "not signed by a CA this client trusts" in message
