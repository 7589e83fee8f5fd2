"""TLS: 1.2 and 1.3 only (DESIGN.md section 3), with the test-time ECDSA certificate."""
import socket
import ssl

import pytest


def handshake(cluster, version, seclevel0=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cluster.cert))
    ctx.minimum_version = version
    ctx.maximum_version = version
    if seclevel0:
        # Our own client must be willing to speak TLS 1.1, or the test would prove nothing.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", cluster.http_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return s.version(), s.cipher(), data


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_modern_tls_accepted(frontend, version, name):
    got, cipher, data = handshake(frontend, version)
    assert got == name
    assert data.startswith(b"HTTP/1.1 200")
    if name == "TLSv1.2":
        assert cipher[0].startswith("ECDHE-ECDSA-"), cipher  # forward secrecy, our ECDSA key
        assert "GCM" in cipher[0] or "CHACHA20" in cipher[0], cipher  # AEAD only


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1],
                         ids=["TLSv1.1", "TLSv1.0"])
def test_old_tls_refused(frontend, version):
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        handshake(frontend, version, seclevel0=True)


def test_non_aead_cipher_refused_on_tls12(frontend):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(frontend.cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection(("127.0.0.1", frontend.http_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
