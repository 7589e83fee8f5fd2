r"""A backend under the test's control. TLS connections (first byte 0x16) get HTTP: /readyz answers
according to the mode file ("ready", "degraded", "fail" = 503, "garbage", "hang"), anything
else 200 "fake-backend". Plain connections get a line command:
  ECHO      read until EOF, then answer "<bytes> <sha256>\n" and close (half-close support)
  BIG n     send n bytes of a fixed pattern, then close (counted in STATS big_sent)
  HOLD      read and discard until EOF
  STATS     answer {"big_sent":n,"connections":n} and close

Run by test_balancer.py: fake_backend.py PORT CERT KEY MODEFILE."""
import json, os, signal, socket, ssl, sys, threading, time, hashlib
port, cert, key, modefile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
stats = {"big_sent": 0, "connections": 0}
lock = threading.Lock()
PATTERN = bytes(range(256)) * 256

def mode():
    try:
        return open(modefile).read().strip()
    except OSError:
        return "ready"

def http(conn):
    s = ctx.wrap_socket(conn, server_side=True)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return
        data += chunk
    path = data.split(b" ")[1].decode()
    if path == "/readyz":
        m = mode()
        if m == "hang":
            time.sleep(3600)
        code, body = {"ready": (200, b'{"status":"ready","db":"up","queue":"up","spool_pending":0}'),
                      "degraded": (200, b'{"status":"degraded","db":"down","queue":"up","spool_pending":0}'),
                      "garbage": (200, b'not json'),
                      }.get(m, (503, b'{"status":"unavailable"}'))
    else:
        code, body = 200, b"fake-backend\n"
    s.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-Backend: fake\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (code, len(body), body))
    s.close()

def plain(conn):
    f = b""
    while b"\n" not in f:
        chunk = conn.recv(4096)
        if not chunk:
            return
        f += chunk
    line, rest = f.split(b"\n", 1)
    cmd = line.split()
    if cmd[0] == b"ECHO":
        h, n = hashlib.sha256(rest), len(rest)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        conn.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
    elif cmd[0] == b"BIG":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        left, sent, twice = int(cmd[1]), 0, PATTERN * 2
        while left > 0:
            off = sent % len(PATTERN)
            n = conn.send(twice[off:off + min(left, len(PATTERN))])
            sent += n
            left -= n
            with lock:
                stats["big_sent"] += n
    elif cmd[0] == b"HOLD":
        while conn.recv(65536):
            pass
    elif cmd[0] == b"STATS":
        with lock:
            conn.sendall(json.dumps(stats).encode() + b"\n")
    conn.close()

def serve(conn):
    try:
        with lock:
            stats["connections"] += 1
        conn.settimeout(120)
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"\x16":
            http(conn)
        elif first:
            plain(conn)
    except Exception:
        pass
    finally:
        conn.close()

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(512)
print("listening", flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
