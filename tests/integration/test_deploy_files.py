"""The operations files in deploy/ do what docs/operations.md says: the systemd units are valid and
hardened, scale-workers.sh converges on N instances (against a fake systemctl), the sample
redis.conf gives AOF-always, noeviction and a least-privilege ACL (on a real redis-server, with
fv-worker and fvctl running against it), and the postgresql.conf fragment archives WAL (on a
real throwaway PostgreSQL). None of these tests needs the shared cluster."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from fvharness import (IS_ROOT, PG_BIN, Proc, RedisClient, RedisError, binary, child_env, free_port,
                       new_id, wait_until, write_config)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"


# ------------------------------------------------------------------ helpers
def parse_unit(path):
    """A systemd unit file as {section: [(key, value), ...]} (keys may repeat)."""
    out, section = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        assert "=" in line and section, f"{path}: not a key=value line: {raw!r}"
        k, v = line.split("=", 1)
        out[section].append((k.strip(), v.strip()))
    return out


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit, section, key):
    vs = values(unit, section, key)
    assert len(vs) == 1, f"[{section}] {key}: expected one value, got {vs}"
    return vs[0]


def conf_keys(path):
    """{section: {key: value}} of an fieldvault.conf-style file (comments skipped)."""
    out, section = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            out[section] = {}
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        out[section][k] = v.strip('"')
    return out


def seconds(v):
    m = re.fullmatch(r"(\d+)\s*(s|sec|min)?", v)
    assert m, f"unsupported time span {v!r}"
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def temp_dir(prefix):
    """A temporary directory PostgreSQL (user postgres when we are root) can reach."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("FV_TEST_TMPDIR") or None))
    os.chmod(d, 0o755)
    if IS_ROOT and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(d)]).returncode != 0:
        shutil.rmtree(d)
        d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(d, 0o755)
    return d


def cleanup(d):
    if os.environ.get("FV_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ systemd units
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "LimitNOFILE": "65536", "KillSignal": "SIGTERM",
             "Restart": "on-failure", "User": "fieldvault"}


@pytest.mark.parametrize("name,binary_name,reload", [
    ("fv-frontend.service", "fv-frontend", True),
    ("fv-worker@.service", "fv-worker", False),
    ("fv-balancer.service", "fv-balancer", True),
])
def test_unit_files(name, binary_name, reload):
    u = parse_unit(UNITS / name)
    assert set(u) == {"Unit", "Service", "Install"}
    for k, v in HARDENING.items():
        assert one(u, "Service", k) == v, f"{name}: {k}"
    assert one(u, "Service", "EnvironmentFile") == "-/etc/fieldvault/fieldvault.env"
    # The package's layout (/usr/bin); `cmake --install --prefix P` rewrites it to P/bin.
    assert one(u, "Service", "ExecStart") == f"/usr/bin/{binary_name} -c /etc/fieldvault/fieldvault.conf"
    assert one(u, "Install", "WantedBy") == "multi-user.target"
    reloads = values(u, "Service", "ExecReload")
    if reload:
        assert reloads[-1] == "/bin/kill -HUP $MAINPID", reloads
    else:
        assert reloads == []
    # systemd SIGKILLs after TimeoutStopSec: that must come after the program's own deadline.
    shutdown = int(conf_keys(DEPLOY / "fieldvault.conf")["frontend"]["shutdown_timeout_s"])
    assert seconds(one(u, "Service", "TimeoutStopSec")) > shutdown + 2
    if binary_name != "fv-balancer":
        assert "/var/lib/fieldvault" in " ".join(values(u, "Service", "ReadWritePaths")).split()
    if binary_name == "fv-worker":
        assert one(u, "Service", "Environment") == "FV_CONSUMER_NAME=%H:%i"
    if binary_name == "fv-frontend":
        # the master alone gets SIGTERM and drains its children
        assert one(u, "Service", "KillMode") == "mixed"


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    for f in UNITS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    # A template is verified through an instance of it.
    shutil.copy(UNITS / "fv-worker@.service", tmp_path / "fv-worker@1.service")
    names = ["fv-frontend.service", "fv-balancer.service", "fv-worker@1.service"]
    r = subprocess.run([tool, "verify", "--man=no", *[str(tmp_path / n) for n in names]],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    # The binaries are not installed on a build machine; anything else is a real complaint.
    complaints = [line for line in (r.stdout + r.stderr).splitlines()
                  if line.strip() and "is not executable" not in line]
    assert complaints == [], "\n".join(complaints)


def test_env_file_names_real_settings():
    """Every FV_ variable the per-host env file shows is a key of the sample configuration (or
    the worker's own consumer name), and nothing is set for real in it."""
    text = (DEPLOY / "fieldvault.env").read_text()
    keys = {k.upper() for section in conf_keys(DEPLOY / "fieldvault.conf").values() for k in section}
    shown = re.findall(r"^#\s?(FV_[A-Z0-9_]+)=", text, flags=re.M)
    assert len(shown) >= 6
    for var in shown:
        assert var[3:] in keys, f"{var} in fieldvault.env is not a key of deploy/fieldvault.conf"
    live = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert live == [], f"fieldvault.env must only hold commented examples: {live}"
    assert "FV_CONSUMER_NAME=" not in text  # set per instance by fv-worker@.service


# ------------------------------------------------------------------ scale-workers.sh
FAKE_SYSTEMCTL = textwrap.dedent('''\
    #!/usr/bin/python3
    """A fake systemctl for tests: state in $FAKE_SYSTEMCTL_STATE (JSON: unit -> {active,
    enabled}), every call appended to $FAKE_SYSTEMCTL_LOG."""
    import fnmatch, json, os, sys
    state_path, log_path = os.environ["FAKE_SYSTEMCTL_STATE"], os.environ["FAKE_SYSTEMCTL_LOG"]
    args = sys.argv[1:]
    with open(log_path, "a") as f:
        f.write(" ".join(args) + "\\n")
    with open(state_path) as f:
        units = json.load(f)

    def save():
        with open(state_path, "w") as f:
            json.dump(units, f)

    def unit_arg():
        names = [a for a in args[1:] if not a.startswith("-")]
        if len(names) != 1 or not names[0].endswith(".service"):
            sys.exit(f"fake systemctl: expected one unit name in {args}")
        return names[0]
    verb = args[0]
    if verb == "list-units":
        pattern = [a for a in args[1:] if not a.startswith("-")][0]
        for name in sorted(units):
            u = units[name]
            # systemd lists what is loaded: running, failed, or enabled
            if fnmatch.fnmatch(name, pattern) and (u["active"] != "inactive" or u["enabled"]):
                sub = {"active": "running", "failed": "failed"}.get(u["active"], "dead")
                print(f"{name} loaded {u['active']} {sub} Fieldvault worker")
    elif verb == "is-enabled":
        u = units.get(unit_arg())
        print("enabled" if u and u["enabled"] else "disabled")
        sys.exit(0 if u and u["enabled"] else 1)
    elif verb in ("start", "stop", "enable", "disable"):
        name = unit_arg()
        u = units.setdefault(name, {"active": "inactive", "enabled": False})
        if verb == "start": u["active"] = "active"
        if verb == "stop": u["active"] = "inactive"
        if verb == "enable": u["enabled"] = True
        if verb == "disable": u["enabled"] = False
        save()
    else:
        sys.exit(f"fake systemctl: unsupported {args}")
''')

MUTATING = ("start ", "stop ", "enable ", "disable ")


class FakeHost:
    def __init__(self, d):
        self.dir = d
        self.state = d / "state.json"
        self.log = d / "calls.log"
        self.bin = d / "systemctl"
        self.bin.write_text(FAKE_SYSTEMCTL)
        self.bin.chmod(0o755)
        self.set({})

    def set(self, units):
        self.state.write_text(json.dumps(units))

    def units(self):
        return json.loads(self.state.read_text())

    def running(self):
        return sorted(n for n, u in self.units().items() if u["active"] == "active")

    def enabled(self):
        return sorted(n for n, u in self.units().items() if u["enabled"])

    def scale(self, *args):
        self.log.write_text("")
        env = dict(os.environ, SYSTEMCTL=str(self.bin), FAKE_SYSTEMCTL_STATE=str(self.state),
                   FAKE_SYSTEMCTL_LOG=str(self.log))
        r = subprocess.run([str(DEPLOY / "scale-workers.sh"), *map(str, args)], capture_output=True,
                           text=True, env=env, timeout=60)
        r.calls = [line for line in self.log.read_text().splitlines() if line]
        r.changes = [c for c in r.calls if c.startswith(MUTATING)]
        return r


def workers(*ks):
    return sorted(f"fv-worker@{k}.service" for k in ks)


def test_scale_workers_up_down_and_idempotent(tmp_path):
    h = FakeHost(tmp_path)
    r = h.scale(3)
    assert r.returncode == 0, r.stderr
    assert h.running() == workers(1, 2, 3) and h.enabled() == workers(1, 2, 3)
    assert sorted(r.changes) == sorted([f"{v} fv-worker@{k}.service" for k in (1, 2, 3)
                                        for v in ("enable", "start")])
    assert "start fv-worker@3.service" in r.stdout and "done" in r.stdout

    r = h.scale(3)  # again: nothing changes
    assert r.returncode == 0 and r.changes == [], r.changes
    assert "nothing to do" in r.stdout

    r = h.scale(1)
    assert r.returncode == 0, r.stderr
    assert h.running() == workers(1) and h.enabled() == workers(1)
    assert sorted(r.changes) == sorted([f"{v} fv-worker@{k}.service" for k in (2, 3)
                                        for v in ("stop", "disable")])
    assert "were 3" in r.stdout

    r = h.scale(1)  # 1 -> 1: no-op
    assert r.returncode == 0 and r.changes == [], r.changes
    assert h.running() == workers(1)

    r = h.scale(0)
    assert r.returncode == 0 and h.running() == [] and h.enabled() == []


def test_scale_workers_dry_run_and_odd_states(tmp_path):
    h = FakeHost(tmp_path)
    # 1 running; 2 failed (crashed past its restarts) and enabled; 5 running but not enabled;
    # 7 enabled but stopped; a hand-made non-numbered instance.
    h.set({"fv-worker@1.service": {"active": "active", "enabled": True},
           "fv-worker@2.service": {"active": "failed", "enabled": True},
           "fv-worker@5.service": {"active": "active", "enabled": False},
           "fv-worker@7.service": {"active": "inactive", "enabled": True},
           "fv-worker@debug.service": {"active": "active", "enabled": False}})
    before = h.units()
    r = h.scale("--dry-run", 3)
    assert r.returncode == 0, r.stderr
    assert r.changes == [] and h.units() == before  # only queries ran
    assert "would run:" in r.stdout and "start fv-worker@2.service" in r.stdout

    r = h.scale(3)
    assert r.returncode == 0, r.stderr
    assert h.running() == workers(1, 2, 3, "debug")
    assert h.enabled() == workers(1, 2, 3)
    assert "stop fv-worker@5.service" in r.changes and "disable fv-worker@7.service" in r.changes
    assert not any("debug" in c for c in r.changes)
    assert "leaving fv-worker@debug.service alone" in r.stderr


@pytest.mark.parametrize("args", [[], ["-1"], ["x"], ["257"], ["1", "2"], ["--bogus", "1"], ["01"]])
def test_scale_workers_refuses_bad_arguments(tmp_path, args):
    h = FakeHost(tmp_path)
    r = h.scale(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.calls == []


def test_scale_workers_reports_a_failing_systemctl(tmp_path):
    h = FakeHost(tmp_path)
    h.bin.write_text("#!/bin/sh\ncase \"$1\" in list-units|is-enabled) exit 0;; *) echo nope >&2; exit 1;; esac\n")
    r = h.scale(1)
    assert r.returncode == 1
    assert "failed" in r.stderr


# ------------------------------------------------------------------ redis.conf
def redis_conf_password(user):
    text = (DEPLOY / "redis.conf").read_text()
    m = re.search(rf"^user {user} on .*?>(\S+)", text, flags=re.M)
    assert m, f"no enabled user {user} with a password in redis.conf"
    return m.group(1)


def start_sample_redis(d, port):
    """redis-server deploy/redis.conf in directory d, with port, bind and dir overridden on the
    command line; waits until the operator user gets PONG. Returns (Proc, operator client)."""
    p = Proc("redis-sample", ["redis-server", str(DEPLOY / "redis.conf"), "--port", port,
                              "--bind", "127.0.0.1", "--dir", d, "--supervised", "no"],
             d / "redis.log", env=child_env())
    admin = RedisClient(port, auth=("fvadmin", redis_conf_password("fvadmin")))

    def up():
        p.check_alive()
        try:
            return admin("PING") == "PONG"
        except (OSError, EOFError, RedisError):
            admin.close()
            return False
    try:
        wait_until(up, 30, what="redis-server with deploy/redis.conf")
    except BaseException:
        p.stop()
        raise
    return p, admin


@pytest.fixture()
def sample_redis():
    """redis-server deploy/redis.conf, with port, bind and dir overridden on the command line."""
    d = temp_dir("fv-redisconf-")
    port = free_port()
    p, admin = start_sample_redis(d, port)
    try:
        yield port, admin, d
    finally:
        admin.close()
        p.stop()
        cleanup(d)


def test_redis_conf_keeps_transactions_across_a_restart():
    """Redis 7.0 re-checks each MULTI/EXEC it replays from the AOF against the `default` user's
    ACL: deploy/redis.conf must not make it drop the workers' dead-letter move (and fvctl's
    requeue) at the next start, while nobody can still log in as `default`."""
    d = temp_dir("fv-redisconf-")
    port = free_port()
    p, admin = start_sample_redis(d, port)
    app = RedisClient(port, auth=("fieldvault", redis_conf_password("fieldvault")))
    try:
        sid = app("XADD", "fv:submissions", "*", "v", "1", "id", "a")
        kept = app("XADD", "fv:submissions", "*", "v", "1", "id", "b")
        app("XGROUP", "CREATE", "fv:submissions", "workers", "0")
        assert len(app("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "1", "STREAMS", "fv:submissions", ">")) == 1
        # the worker's dead-letter move of entry a: one transaction
        assert app("MULTI") == "OK"
        for cmd in (["XADD", "fv:dead", "*", "v", "1", "id", "a", "error", "e", "stream_id", sid],
                    ["XACK", "fv:submissions", "workers", sid], ["XDEL", "fv:submissions", sid]):
            assert app(*cmd) == "QUEUED"
        assert len(app("EXEC")) == 3
        assert app("XLEN", "fv:dead") == 1 and app("XLEN", "fv:submissions") == 1
        app.close()
        admin.close()
        assert p.stop() == 0
        p, admin = start_sample_redis(d, port)
        assert admin("XLEN", "fv:dead") == 1, (d / "redis.log").read_text()[-3000:]
        assert [e for e, _f in admin("XRANGE", "fv:submissions", "-", "+")] == [kept]
        assert admin("XPENDING", "fv:submissions", "workers")[0] == 0
        assert "NOPERM" not in (d / "redis.log").read_text()
        # `default` still lets nobody in
        anon = RedisClient(port)
        try:
            with pytest.raises(RedisError, match="NOAUTH"):
                anon("GET", "x")
            for pw in ("", "x", redis_conf_password("fieldvault")):
                with pytest.raises(RedisError, match="WRONGPASS"):
                    anon("AUTH", "default", pw)
        finally:
            anon.close()
    finally:
        app.close()
        admin.close()
        p.stop()
        cleanup(d)


def test_redis_conf_durability_and_memory(sample_redis):
    port, admin, d = sample_redis
    assert admin("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    assert admin("CONFIG", "GET", "appendfsync") == ["appendfsync", "always"]
    assert admin("CONFIG", "GET", "no-appendfsync-on-rewrite") == ["no-appendfsync-on-rewrite", "no"]
    assert admin("CONFIG", "GET", "maxmemory-policy") == ["maxmemory-policy", "noeviction"]
    assert int(admin("CONFIG", "GET", "maxmemory")[1]) > 0
    assert admin("CONFIG", "GET", "protected-mode") == ["protected-mode", "yes"]
    assert (d / "appendonlydir").is_dir()


def test_redis_conf_acl(sample_redis):
    port, _admin, _d = sample_redis
    anon = RedisClient(port)
    app = RedisClient(port)
    try:
        with pytest.raises(RedisError, match="NOAUTH"):
            anon("PING")
        with pytest.raises(RedisError, match="NOAUTH"):
            anon("XADD", "fv:submissions", "*", "a", "b")
        # A password-only AUTH (the `default` user) is refused: it is switched off.
        with pytest.raises(RedisError):
            anon("AUTH", redis_conf_password("fieldvault"))
        # The programs send AUTH fieldvault <password>: a user restricted to Fieldvault's needs.
        assert app("AUTH", "fieldvault", redis_conf_password("fieldvault")) == "OK"
        assert app("PING") == "PONG"
        assert app("XADD", "fv:submissions", "*", "v", "1")
        assert app("XLEN", "fv:submissions") == 1
        # The front ends' shared lookup cache.
        assert app("SET", "fv:cache:apikey:x", "{}", "EX", "60") == "OK"
        assert app("MGET", "fv:cache:apikey:x", "fv:cache:deployment:y") == ["{}", None]
        # The API keys' rate limit (INCR, EXPIRE NX, DEL on fv:rl:*) and cache deletions.
        assert app("INCR", "fv:rl:k:1") == 1
        assert app("EXPIRE", "fv:rl:k:1", "65") == 1
        assert app("EXPIRE", "fv:rl:k:1", "3600", "NX") == 0
        assert app("DEL", "fv:rl:k:1", "fv:cache:apikey:x") == 2
        # Permissions shared as one hash per user; login throttling counters.
        assert app("HSET", "fv:cache:enumerator:u", "d", "1") == 1
        assert app("HGET", "fv:cache:enumerator:u", "d") == "1"
        assert app("EXPIRE", "fv:cache:enumerator:u", "600") == 1
        assert app("DEL", "fv:cache:enumerator:u") == 1
        assert app("INCR", "fv:throttle:acct:h") == 1
        assert app("DECR", "fv:throttle:acct:h") == 0
        assert app("EXPIRE", "fv:throttle:acct:h", "900") == 1
        assert app("TTL", "fv:throttle:acct:h") > 0
        assert app("DEL", "fv:throttle:acct:h") == 1
        assert app("GET", "fv:throttle:fail:pair:h:a") is None
        # The per-user caps on unverified submissions (a count and bytes).
        assert app("INCR", "fv:unverified:u:1:n") == 1
        assert app("INCRBY", "fv:unverified:u:1:b", "300") == 300
        assert app("EXPIRE", "fv:unverified:u:1:b", "3605") == 1
        for cmd in (["HSET", "fv:submissions", "a", "1"], ["HSET", "fv:rl:k:1", "a", "1"]):
            with pytest.raises(RedisError, match="NOPERM|WRONGTYPE"):
                app(*cmd)
        for cmd in (["INCR", "fv:submissions"], ["EXPIRE", "fv:submissions", "1"],
                    ["INCR", "fv:cache:apikey:x"], ["DEL", "fv:dead"]):
            with pytest.raises(RedisError, match="NOPERM"):
                app(*cmd)
        for cmd in (["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "SET", "appendfsync", "no"], ["KEYS", "*"],
                    ["DEBUG", "SLEEP", "0"], ["SHUTDOWN"],
                    ["ACL", "LIST"], ["SET", "other:x", "1"], ["DEL", "fv:submissions"],
                    ["REPLICAOF", "127.0.0.1", "1"], ["MONITOR"]):
            # DEBUG is refused before the ACL is looked at (enable-debug-command no)
            with pytest.raises(RedisError, match="NOPERM|DEBUG command not allowed"):
                app(*cmd)
        # No scripts at all: the claim is a plain SET sent before the XADD.
        assert app("SET", "fv:subid:x", "1", "NX", "GET", "EX", "60") is None
        assert app("MGET", "fv:subid:x", "fv:subid:y") == ["1", None]
        for cmd in (["EVAL", "return 1", "0"],
                    ["EVAL", "return redis.call('SET', KEYS[1], '1')", "1", "fv:subid:x"],
                    ["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
                    ["FUNCTION", "LIST"], ["SCRIPT", "FLUSH"]):
            with pytest.raises(RedisError, match="NOPERM|no permissions"):
                app(*cmd)
        for cmd in (["XADD", "other", "*", "a", "b"], ["XLEN", "jobs"], ["XRANGE", "x:fv", "-", "+"]):
            with pytest.raises(RedisError, match="NOPERM"):
                app(*cmd)
        # Each command only on its own keys: no string or hash command reaches a stream (it
        # would overwrite or read the queue of acknowledged submissions), no stream command a
        # cache entry or a counter.
        for cmd in (["SET", "fv:submissions", "x"], ["SET", "fv:dead", "x"], ["GET", "fv:submissions"],
                    ["MGET", "fv:cache:apikey:x", "fv:submissions"], ["HGET", "fv:dead", "a"],
                    ["EXPIRE", "fv:dead", "1"], ["SET", "fv:rl:k:1", "0"], ["SET", "fv:throttle:acct:h", "0"],
                    ["SET", "fv:other", "x"], ["GET", "fv:other"],
                    ["XADD", "fv:cache:apikey:x", "*", "a", "b"], ["XADD", "fv:rl:k:2", "*", "a", "b"],
                    ["XLEN", "fv:throttle:acct:h"], ["XADD", "fv:other", "*", "a", "b"],
                    ["WATCH", "fv:cache:apikey:x"]):
            with pytest.raises(RedisError, match="NOPERM"):
                app(*cmd)
        # What fvctl's requeue does: WATCH the dead letters, then MULTI/XADD/XDEL/EXEC.
        assert app("WATCH", "fv:dead") == "OK"
        assert app("MULTI") == "OK"
        assert app("XADD", "fv:submissions", "*", "v", "1") == "QUEUED"
        assert len(app("EXEC")) == 1
        assert app("XLEN", "fv:submissions") == 2  # still there, one more
    finally:
        anon.close()
        app.close()


def test_programs_work_under_the_redis_acl(sample_redis, tmp_path):
    """fv-worker and fvctl, authenticated as the sample's Fieldvault user, can do everything they
    do: the worker creates the group, reads and holds an entry while PostgreSQL is unreachable,
    and leaves cleanly; fvctl shows the queue, lists and requeues a dead letter."""
    port, admin, d = sample_redis
    conf = tmp_path / "fieldvault.conf"
    dead_pg = free_port()  # nothing listens there: the worker keeps its batch and retries
    keys = tmp_path / "master.key"  # the worker opens sealed entries with it (fv_qseal.h)
    keys.write_text(os.urandom(32).hex() + "\n")
    os.chmod(keys, 0o600)
    write_config(conf, {
        "common": {"pg_dsn": f"host=127.0.0.1 port={dead_pg} dbname=fieldvault user=fieldvault",
                   "redis_host": "127.0.0.1", "redis_port": port, "key_file": keys},
        "worker": {"block_ms": 100, "io_timeout_ms": 1000, "pg_retry_max_ms": 200},
    })
    env = child_env(FV_REDIS_USER="fieldvault", FV_REDIS_PASSWORD=redis_conf_password("fieldvault"))
    # One poison entry (dead-lettered at once: MULTI/XADD/XACK/XDEL/EXEC) and one well-formed
    # entry (held pending: PostgreSQL is unreachable).
    admin("XADD", "fv:submissions", "*", "v", "1", "id", "poison")
    admin("XADD", "fv:submissions", "*", "v", "1", "id", "5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0001",
          "survey_id", "5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0002", "survey_version", "1",
          "deployment_id", "5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0003",
          "submitted_by", "5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0004",
          "received_at", str(int(time.time() * 1000)), "data", '{"a": 1}', "location", "",
          "collected_at", "", "verified", "1")

    w = Proc("worker-acl", [binary("fv-worker"), "-c", conf], tmp_path / "worker.log",
             env=child_env(FV_REDIS_USER="fieldvault", FV_REDIS_PASSWORD=redis_conf_password("fieldvault"),
                           FV_CONSUMER_NAME="acl-test"))
    try:
        def settled():
            w.check_alive()
            try:
                pending = admin("XPENDING", "fv:submissions", "workers")[0]
            except RedisError:  # NOGROUP until the worker created it
                return False
            return pending == 1 and admin("XLEN", "fv:dead") == 1
        wait_until(settled, 30, what="the worker to dead-letter one entry and hold the other")
    finally:
        rc = w.stop()
    log = (tmp_path / "worker.log").read_text()
    assert rc == 0, log[-2000:]
    assert "NOPERM" not in log, log[-2000:]

    def fvctl(*args, check=True):
        r = subprocess.run([binary("fvctl"), "-c", str(conf), *args], capture_output=True, text=True,
                           env=env, timeout=60)
        assert not check or r.returncode == 0, r.stderr
        return r
    assert "fv:submissions: " in fvctl("queue").stdout
    dead_id = admin("XADD", "fv:dead", "*", "v", "1", "id", "y", "error", "e", "stream_id", "1-0",
                    "deliveries", "3")
    assert dead_id in fvctl("dead-letters").stdout
    fvctl("requeue", dead_id)
    assert [e for e, _f in admin("XRANGE", "fv:dead", "-", "+") if e == dead_id] == []
    r = fvctl("requeue", dead_id, check=False)
    assert r.returncode == 1 and "NOPERM" not in r.stderr, r.stderr


# ------------------------------------------------------------------ postgresql.conf
def test_postgresql_fragment_archives_wal():
    """A throwaway cluster that includes deploy/postgresql.conf (archive directory pointed at a
    temporary one) archives a WAL segment after a write and pg_switch_wal()."""
    d = temp_dir("fv-pgconf-")
    data, sock, archive = d / "data", d / "sock", d / "archive"
    for x in (sock, archive):
        x.mkdir()
    fragment = d / "fieldvault-postgresql.conf"
    shutil.copy(DEPLOY / "postgresql.conf", fragment)
    if IS_ROOT:
        for x in (d, sock, archive, fragment):
            shutil.chown(x, "postgres", "postgres")

    def as_pg(argv):
        argv = [str(a) for a in argv]
        return ["runuser", "-u", "postgres", "--"] + argv if IS_ROOT else argv

    def run(argv, **kw):
        r = subprocess.run(as_pg(argv), capture_output=True, text=True, timeout=120, **kw)
        assert r.returncode == 0, f"{argv}: {r.stdout}\n{r.stderr}"
        return r.stdout
    port = free_port()
    started = False
    try:
        run([PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"])
        command = re.search(r"^archive_command = '(.*)'$", fragment.read_text(), flags=re.M).group(1)
        assert "test ! -f" in command
        ours = command.replace("/mnt/wal-archive", str(archive))
        assert ours != command
        conf = "\n".join([
            f"port = {port}", "listen_addresses = ''", f"unix_socket_directories = '{sock}'",
            f"include_if_exists = '{fragment}'",
            "# the test's override: the archive directory is a temporary one",
            f"archive_command = '{ours}'",
            # keep the throwaway cluster small; the fragment's sizes are for production
            "max_wal_size = 64MB", "min_wal_size = 32MB", "wal_keep_size = 0", ""])
        run(["sh", "-c", f"cat >> '{data}/postgresql.conf'"], input=conf)
        run([PG_BIN / "pg_ctl", "-D", data, "-l", d / "postgresql.log", "-w", "-t", "60", "start"])
        started = True

        def sql(q):
            return run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", port,
                        "-U", "postgres", "-d", "postgres", "-c", q]).strip()
        assert sql("SHOW archive_mode") == "on"  # the fragment was included
        assert sql("SHOW wal_level") == "replica"
        assert sql("SHOW synchronous_commit") == "on"
        assert sql("SHOW fsync") == "on"
        assert int(sql("SHOW max_wal_senders")) >= 2
        sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)")
        segment = sql("SELECT pg_walfile_name(pg_switch_wal())")
        assert re.fullmatch(r"[0-9A-F]{24}", segment)
        wait_until(lambda: (archive / segment).is_file(), 60, what=f"WAL segment {segment} in the archive")
        assert (archive / segment).stat().st_size == 16 * 1024 * 1024
        assert not list(archive.glob("*.tmp"))
        stats = sql("SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
        assert int(stats[0]) >= 1 and int(stats[1]) == 0, stats
    finally:
        if started:
            r = subprocess.run(as_pg([PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"]),
                               capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(as_pg([PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]),
                               capture_output=True, text=True)
        cleanup(d)


def test_session_cluster_runs_under_the_redis_acl(world):
    """The harness starts Redis with deploy/redis.conf's users and the programs authenticate as
    `fieldvault`, so the whole suite runs under the production ACL (and fails at teardown on any
    refusal in Redis's ACL LOG). Here: every connection but the harness's is that user, and the
    Redis work of a sign-in failure, API-key requests, a submission and its storage is refused
    nothing."""
    c = world.cluster
    clients = [dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
               for line in c.redis_cli("CLIENT", "LIST").splitlines()]
    users = {x["user"] for x in clients if x.get("user") != "fvadmin"}
    assert users == {"fieldvault"}, clients
    r = world.stranger.post("/v1/auth/login", json={"email": "nobody@example.org", "password": "wrong-password-1"})
    assert r.status_code == 401, r.text
    for _ in range(3):  # API-key cache, rate limit, permissions cache
        assert world.enum.get("/v1/me").status_code == 200
    rid = new_id()
    assert world.submit(id=rid).status_code == 202
    world.wait_readable(rid)
    assert c.acl_refusals() == []
    # The check has teeth: a refused command shows in the log the harness reads.
    app = c.redis_client("fieldvault")
    try:
        with pytest.raises(RedisError, match="NOPERM"):
            app("SET", c.STREAM, "x")
        assert [(e["reason"], e["object"]) for e in c.acl_refusals()] == [("key", c.STREAM)]
    finally:
        app.close()
        c.redis_cli("ACL", "LOG", "RESET")


def test_build_tree_holds_exactly_the_source_migrations():
    """fvctl migrate applies what <build>/share/fieldvault/sql holds: exactly common/sql's files
    (a copy left from a renamed migration would be applied a second time under its old number;
    017 is unused)."""
    from fvharness import build_dir
    built = sorted(p.name for p in (build_dir() / "share/fieldvault/sql").glob("*.sql"))
    assert built == sorted(p.name for p in (REPO / "common/sql").glob("*.sql"))
    assert not any(n.startswith("017_") for n in built)


def test_stale_migration_copies_are_pruned(tmp_path):
    for n in ("001_initial.sql", "017_survey_keys.sql", "022_survey_keys.sql", "notes.txt"):
        (tmp_path / n).write_text("--")
    subprocess.run(["cmake", f"-DDIR={tmp_path}", "-DKEEP=001_initial.sql,022_survey_keys.sql", "-P",
                    str(REPO / "tools/prune_sql.cmake")], check=True, capture_output=True)
    assert sorted(os.listdir(tmp_path)) == ["001_initial.sql", "022_survey_keys.sql", "notes.txt"]
