"""TLS: 1.2 and 1.3 only (DESIGN.md section 3), with the test-time ECDSA certificate."""
import json
import os
import re
import shutil
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


# ------------------------------------------------------------------ testssl.sh
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")


@pytest.fixture(scope="module")
def testssl_findings(frontend, tmp_path_factory):
    """testssl.sh (Debian's testssl.sh 3.0.8; deploy/install-deps.sh --test installs it) against
    the session front end: protocols, cipher categories, each cipher per protocol, forward
    secrecy, HTTP headers and the vulnerability checks. {id: finding dict}."""
    if not TESTSSL:
        pytest.fail("testssl.sh is not installed (deploy/install-deps.sh --test installs it)")
    out = tmp_path_factory.mktemp("testssl") / "testssl.json"
    argv = [TESTSSL, "--quiet", "--warnings", "off", "--color", "0", "--jsonfile", str(out),
            "--ip", "127.0.0.1", "--sneaky", "--openssl-timeout", "10", "--connect-timeout", "10",
            "-p", "-s", "-E", "-f", "-h", "-U", f"127.0.0.1:{frontend.http_port}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=240,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(out.parent),
                            "LC_ALL": "C.UTF-8", "TERM": "dumb"})
    assert out.exists(), f"testssl wrote no JSON (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    findings = json.loads(out.read_text())
    assert findings, "testssl found nothing at all"
    # engine_problem is about the scanner's own openssl (no GOST engine in Debian's OpenSSL 3.0
    # builds, e.g. 3.0.19-1~deb12u2: `openssl engine gost` cannot load gost.so), not about the
    # server: it only means testssl cannot try GOST suites, which the front end never offers.
    assert not [f for f in findings if f["id"] == "scanProblem"], findings
    by_id = {}
    for f in findings:
        if f["id"] != "engine_problem":
            by_id.setdefault(f["id"], f)
    return by_id


def test_testssl_only_tls12_and_tls13(testssl_findings):
    f = testssl_findings
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert f[old]["finding"].startswith("not offered"), f[old]
    assert f["TLS1_2"]["finding"].startswith("offered"), f["TLS1_2"]
    assert f["TLS1_3"]["finding"].startswith("offered"), f["TLS1_3"]


def test_testssl_no_weak_cipher_categories(testssl_findings):
    f = testssl_findings
    for cat in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):  # AVERAGE: the obsolete CBC suites
        assert f[cat]["finding"] == "not offered", f[cat]
    assert f["cipherlist_STRONG"]["finding"].startswith("offered"), f["cipherlist_STRONG"]


def test_testssl_every_suite_is_aead_with_forward_secrecy(testssl_findings):
    suites = [v["finding"] for k, v in testssl_findings.items() if k.startswith("cipher-tls1_")]
    assert suites, "testssl listed no cipher suite"
    for s in suites:
        # e.g. "TLSv1.2   xc02b   ECDHE-ECDSA-AES128-GCM-SHA256   ECDH 253   AESGCM   128   ..."
        assert re.search(r"\bECDH|TLS_AES_|TLS_CHACHA20_", s), s
        assert re.search(r"GCM|CHACHA20|POLY1305", s), s
        for bad in ("NULL", "EXP", "RC4", "DES", "CBC", "-SHA ", "SHA1", "MD5", "anon", "RSA  "):
            assert bad not in s, (bad, s)
    fs = testssl_findings.get("FS") or testssl_findings.get("PFS")  # 3.0.8 says PFS
    assert fs and fs["severity"] == "OK", fs
    fs_ciphers = (testssl_findings.get("FS_ciphers") or testssl_findings.get("PFS_ciphers"))["finding"].split()
    names = {s.split()[3] for s in suites}  # "TLS 1.2   xc02b   ECDHE-ECDSA-AES128-GCM-SHA256 ..."
    assert names <= set(fs_ciphers), (names, fs_ciphers)


def test_testssl_finds_nothing_to_warn_about(testssl_findings):
    bad = [f for f in testssl_findings.values() if f["severity"] not in ("OK", "INFO")]
    assert bad == [], bad


def test_testssl_hsts_with_subdomains(testssl_findings):
    hsts = testssl_findings["HSTS_time"]
    assert hsts["severity"] == "OK", hsts
    sub = testssl_findings["HSTS_subdomains"]
    assert "includes subdomains" in sub["finding"], sub


def test_testssl_no_known_vulnerability(testssl_findings):
    vulns = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego",
             "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM",
             "BEAST", "LUCKY13", "RC4")
    for v in vulns:
        if v in testssl_findings:
            assert testssl_findings[v]["severity"] in ("OK", "INFO"), testssl_findings[v]
    assert "heartbleed" in testssl_findings and "ROBOT" in testssl_findings
