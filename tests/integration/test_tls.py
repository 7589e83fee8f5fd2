"""TLS: 1.2 and 1.3 only (DESIGN.md section 3), with the test-time ECDSA certificate."""
import os
import socket
import ssl
import subprocess

import pytest

from fvharness import binary, child_env, free_port, wait_until


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


# ------------------------------------------------------------------ OCSP stapling (ASVS 9.2.4)

def _openssl(*args, cwd=None, input=None):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       input=input, timeout=60)
    assert r.returncode == 0, f"openssl {args[0]}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a leaf for 127.0.0.1 issued by it (chain file: leaf + CA), and OCSP answers about
    the leaf: good, revoked, and good but about another certificate."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "2",
             "-subj", "/CN=Fieldvault test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    for name in ("leaf", "other"):
        _openssl("req", *ec, "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr", "-subj", "/CN=127.0.0.1")
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
                 "-CAcreateserial", "-out", d / f"{name}.pem", "-days", "2", "-extfile", d / "ext.cnf")
    os.chmod(d / "leaf.key", 0o600)
    (d / "chain.pem").write_text((d / "leaf.pem").read_text() + (d / "ca.pem").read_text())

    def answer(cert, status):
        serial = _openssl("x509", "-in", d / cert, "-noout", "-serial").strip().split("=")[1]
        subject = "/CN=127.0.0.1"
        line = (f"V\t300101000000Z\t\t{serial}\tunknown\t{subject}\n" if status == "good"
                else f"R\t300101000000Z\t240101000000Z\t{serial}\tunknown\t{subject}\n")
        (d / "index.txt").write_text(line)
        _openssl("ocsp", "-issuer", d / "ca.pem", "-cert", d / cert, "-no_nonce", "-reqout", d / "req.der")
        out = d / f"ocsp-{cert}-{status}.der"
        _openssl("ocsp", "-index", d / "index.txt", "-rsigner", d / "ca.pem", "-rkey", d / "ca.key",
                 "-CA", d / "ca.pem", "-reqin", d / "req.der", "-respout", out, "-ndays", "1")
        return out
    return {"dir": d, "good": answer("leaf.pem", "good"), "revoked": answer("leaf.pem", "revoked"),
            "other": answer("other.pem", "good")}


def _s_client_status(port, ca):
    return _openssl("s_client", "-connect", f"127.0.0.1:{port}", "-status", "-CAfile", ca,
                    "-servername", "localhost", input="")


def test_ocsp_response_is_stapled(frontend, pki):
    d = pki["dir"]
    port = free_port()
    env = dict(FV_LISTEN_PORT=port, FV_TLS_CERT=d / "chain.pem", FV_TLS_KEY=d / "leaf.key",
               FV_TLS_OCSP_RESPONSE=pki["good"])
    p = frontend._spawn("frontend-ocsp", [binary("fv-frontend"), "-c", frontend.conf],
                        env=child_env(**{k: str(v) for k, v in env.items()}))
    try:
        def up():
            p.check_alive()
            try:
                return "OCSP Response Status: successful" in _s_client_status(port, d / "ca.pem")
            except AssertionError:
                return False
        wait_until(up, 60, what="the OCSP-stapling front end")
        out = _s_client_status(port, d / "ca.pem")
        assert "Cert Status: good" in out, out
        assert "Verify return code: 0 (ok)" in out, out
    finally:
        p.stop()
    # the main front end has no response configured: nothing stapled
    out = _s_client_status(frontend.http_port, frontend.cert)
    assert "OCSP response: no response sent" in out, out


@pytest.mark.parametrize("which,why", [("revoked", "does not say the certificate is good"),
                                       ("other", "not about tls_cert")])
def test_a_wrong_ocsp_response_is_refused_at_start(frontend, pki, tmp_path, which, why):
    d = pki["dir"]
    env = child_env(FV_TLS_CERT=str(d / "chain.pem"), FV_TLS_KEY=str(d / "leaf.key"),
                    FV_TLS_OCSP_RESPONSE=str(pki[which]))
    r = subprocess.run([binary("fv-frontend"), "-c", str(frontend.conf), "--check-config"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert why in r.stdout + r.stderr
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x03\x0a\x01\x00" + os.urandom(64))
    env["FV_TLS_OCSP_RESPONSE"] = str(garbage)
    r = subprocess.run([binary("fv-frontend"), "-c", str(frontend.conf), "--check-config"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "tls_ocsp_response" in r.stdout + r.stderr
