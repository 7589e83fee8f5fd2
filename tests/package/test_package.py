"""The Debian package works from its installed tree: the .deb that `cpack -G DEB` made in the
build directory is unpacked with `dpkg -x` into a scratch root, and from there `fvctl migrate`
applies exactly the installed migrations to a real throwaway PostgreSQL (the integration
harness's), `fv-frontend --check-config` accepts the installed sample configuration (pointed at
test-time certificates), and the package's metadata says what a Debian admin expects.

Run by tests/run.sh (the package step, after the release build) or by hand:
    (cd build && cpack -G DEB)
    FV_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest tests/package -q
FV_DEB names another .deb. Without a .deb every test here fails: the step exists to test one.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from fvharness import IS_ROOT, Postgres, build_dir, child_env, free_port  # noqa: E402

PROGRAMS = ["fv-frontend", "fv-worker", "fv-balancer", "fvctl", "fv-decrypt"]
UNITS = ["fv-frontend.service", "fv-worker@.service", "fv-balancer.service"]
REPO = Path(__file__).resolve().parents[2]


def keep_tmp():
    return os.environ.get("FV_KEEP_TMP") == "1"


def scratch(prefix):
    """A temporary directory the postgres user can reach (PostgreSQL runs as postgres when we
    are root), like the harness's Cluster."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("FV_TEST_TMPDIR") or None))
    os.chmod(d, 0o755)
    if IS_ROOT and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(d)]).returncode != 0:
        shutil.rmtree(d)
        d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(d, 0o755)
    return d


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def deb():
    if os.environ.get("FV_DEB"):
        p = Path(os.environ["FV_DEB"])
    else:
        found = sorted(build_dir().glob("fieldvault_*.deb"), key=lambda f: f.stat().st_mtime)
        assert found, f"no fieldvault_*.deb in {build_dir()}: run `cpack -G DEB` there first"
        p = found[-1]
    assert p.is_file(), p
    return p


@pytest.fixture(scope="module")
def root(deb):
    """The package unpacked into a scratch root (no maintainer scripts run)."""
    d = scratch("fv-pkg-")
    r = run(["dpkg", "-x", deb, d / "root"])
    assert r.returncode == 0, r.stderr
    yield d / "root"
    if keep_tmp():
        print(f"kept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL 15 of our own (fvharness.Postgres: initdb, pg_ctl -w, free port)."""
    d = scratch("fv-pkg-pg-")
    p = Postgres(d, free_port())
    try:
        p.start()
        yield p
    finally:
        p.stop()
        if not keep_tmp():
            shutil.rmtree(d, ignore_errors=True)


def fresh_db(pg, name):
    pg.psql_cli(f"CREATE DATABASE {name} OWNER fieldvault", db="postgres")
    return pg.dsn(db=name)


def applied(pg, db):
    out = pg.psql_cli("SELECT version || ' ' || name FROM schema_migrations ORDER BY version", db=db)
    return [line for line in out.splitlines() if line]


def installed_sql(root):
    return sorted(p.name for p in (root / "usr/share/fieldvault/sql").glob("*.sql"))


def expected_rows(names):
    """schema_migrations rows ("version name") for migration files: the name has no .sql."""
    return [f"{int(n.split('_', 1)[0])} {n[:-len('.sql')]}" for n in names]


def fvctl_help(root):
    r = run([root / "usr/bin/fvctl", "migrate", "--help"], env=child_env())
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


# ------------------------------------------------------------------ layout and metadata
def test_package_metadata(deb):
    fields = {}
    r = run(["dpkg-deb", "-f", deb])
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        m = re.match(r"^([A-Za-z-]+): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    assert fields["Package"] == "fieldvault"
    version = re.search(r"project\(fieldvault VERSION (\S+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert fields["Version"] == version
    assert fields.get("Maintainer")
    assert fields.get("Description")
    # Depends computed by dpkg-shlibdeps: the shared libraries the programs link.
    depends = fields["Depends"]
    for lib in ("libc6", "libevent-core", "libpq5", "libssl3", "libhiredis", "libyajl2", "libpcre2-8-0", "adduser"):
        assert lib in depends, depends
    # /etc/fieldvault/fieldvault.conf is a conffile: dpkg keeps the admin's edits on upgrade.
    ctrl = Path(tempfile.mkdtemp(prefix="fv-pkg-ctrl-"))
    try:
        r = run(["dpkg-deb", "-e", deb, ctrl / "DEBIAN"])
        assert r.returncode == 0, r.stderr
        assert (ctrl / "DEBIAN/conffiles").read_text().split() == ["/etc/fieldvault/fieldvault.conf"]
        assert os.access(ctrl / "DEBIAN/postinst", os.X_OK)
        r = run(["sh", "-n", ctrl / "DEBIAN/postinst"])
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(ctrl, ignore_errors=True)


def test_installed_layout(root):
    for p in PROGRAMS:
        f = root / "usr/bin" / p
        assert f.is_file() and os.access(f, os.X_OK), f
    assert sorted(p.name for p in (root / "usr/bin").iterdir()) == sorted(PROGRAMS)  # no fv-bench, no tests
    assert installed_sql(root) == sorted(p.name for p in (REPO / "common/sql").glob("*.sql"))
    assert (root / "etc/fieldvault/fieldvault.conf").read_text() == (REPO / "deploy/fieldvault.conf").read_text()
    assert (root / "usr/share/fieldvault/fieldvault.conf").is_file()
    assert (root / "usr/share/doc/fieldvault/operations.md").is_file()
    for u in UNITS:
        text = (root / "usr/lib/systemd/system" / u).read_text()
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecReload=")):
                exe = line.split("=", 1)[1].split()[0]
                assert exe in ("/bin/kill",) or exe.startswith("/usr/bin/fv-"), line
                assert exe == "/bin/kill" or (root / exe.lstrip("/")).is_file(), line
        assert "file:///usr/share/doc/fieldvault/operations.md" in text


def test_installed_programs_are_hardened(root):
    """OWASP ASVS 14.1.2: the shipped binaries are position-independent, with read-only
    relocations bound at start (full RELRO), a non-executable stack, the stack protector and
    glibc's fortified calls (the release build; the sanitizer builds leave these out)."""
    for p in PROGRAMS:
        f = root / "usr/bin" / p
        header = run(["readelf", "-hW", f]).stdout
        assert re.search(r"Type:\s+DYN", header), f"{p} is not PIE"
        dyn = run(["readelf", "-dW", f]).stdout
        assert "BIND_NOW" in dyn or re.search(r"FLAGS_1.*NOW", dyn), f"{p} lacks -z now"
        seg = run(["readelf", "-lW", f]).stdout
        assert "GNU_RELRO" in seg, f"{p} lacks RELRO"
        stack = [l for l in seg.splitlines() if "GNU_STACK" in l]
        assert stack and not stack[0].rstrip().endswith("RWE 0x10") and " RWE " not in stack[0], f"{p} has an executable stack"
        syms = run(["readelf", "--dyn-syms", "-W", f]).stdout
        assert "__stack_chk_fail" in syms, f"{p} lacks the stack protector"
        assert re.search(r"__\w+_chk\b", syms.replace("__stack_chk_fail", "")), f"{p} has no fortified calls"


# ------------------------------------------------------------------ the installed programs work
def test_installed_fvctl_applies_the_installed_migrations(root, pg):
    """fvctl migrate from the unpacked tree, --sql-dir naming the installed migrations: every
    installed file applied once, in order, and nothing else."""
    dsn = fresh_db(pg, "fv_pkg_explicit")
    env = child_env(FV_PG_DSN=dsn)
    sql_dir = root / "usr/share/fieldvault/sql"
    r = run([root / "usr/bin/fvctl", "migrate", "--sql-dir", sql_dir], env=env)
    assert r.returncode == 0, r.stderr
    names = installed_sql(root)
    assert applied(pg, "fv_pkg_explicit") == expected_rows(names)
    assert f"{len(names)} migrations applied" in r.stderr, r.stderr
    # Again: nothing left to apply.
    r = run([root / "usr/bin/fvctl", "migrate", "--sql-dir", sql_dir], env=env)
    assert r.returncode == 0 and "0 migrations applied" in r.stderr, r.stderr


def test_installed_fvctl_finds_the_installed_migrations_itself(root, pg):
    """Without --sql-dir, fvctl reads <dir of the executable>/../share/fieldvault/sql. A probe
    migration added to the unpacked tree only proves it read that folder and not the source
    tree's common/sql (which exists on a build machine)."""
    assert "share/fieldvault/sql" in fvctl_help(root), "fvctl migrate --help names where it looks"
    sql_dir = root / "usr/share/fieldvault/sql"
    probe = sql_dir / "999_package_probe.sql"
    probe.write_text("-- written by tests/package/test_package.py\nCREATE TABLE package_probe (x int);\n")
    try:
        dsn = fresh_db(pg, "fv_pkg_relative")
        r = run([root / "usr/bin/fvctl", "migrate"], env=child_env(FV_PG_DSN=dsn))
        assert r.returncode == 0, r.stderr
        assert applied(pg, "fv_pkg_relative") == expected_rows(installed_sql(root))
        assert applied(pg, "fv_pkg_relative")[-1] == "999 999_package_probe"
    finally:
        probe.unlink()


def test_installed_frontend_checks_the_installed_sample_config(root, tmp_path):
    """fv-frontend --check-config on the package's /etc/fieldvault/fieldvault.conf with only the
    paths of the certificate, key, master key and spool changed to test-time ones."""
    cert, key, master = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "master.key"
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "7", "-subj", "/CN=127.0.0.1"])
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o600)
    master.write_text(os.urandom(32).hex() + "\n")
    os.chmod(master, 0o600)
    replace = {"/etc/fieldvault/tls/cert.pem": cert, "/etc/fieldvault/tls/key.pem": key,
               "/etc/fieldvault/keys/master.key": master, "/var/lib/fieldvault/spool": tmp_path / "spool"}
    text = (root / "etc/fieldvault/fieldvault.conf").read_text()
    for old, new in replace.items():
        assert re.search(rf"^\w+ = {re.escape(old)}$", text, flags=re.M), f"the sample no longer sets {old}"
        text = re.sub(rf"^(\w+) = {re.escape(old)}$", rf"\1 = {new}", text, flags=re.M)
    conf = tmp_path / "fieldvault.conf"
    conf.write_text(text)
    exe = root / "usr/bin/fv-frontend"
    r = run([exe, "-c", conf, "--check-config"], env=child_env())
    assert r.returncode == 0, r.stdout + r.stderr
    # ... and it does check: a missing certificate fails.
    conf.write_text(text.replace(str(cert), str(tmp_path / "missing.pem")))
    r = run([exe, "-c", conf, "--check-config"], env=child_env())
    assert r.returncode != 0, r.stdout + r.stderr


# ------------------------------------------------------------------ cmake --install without the package
def test_cmake_install_into_a_prefix(tmp_path):
    """`cmake --install build --prefix P`: the same tree under P, the units' ExecStart naming
    P/bin, and nothing written outside P (the /etc conffile is the package's alone)."""
    prefix = tmp_path / "prefix"
    r = run(["cmake", "--install", build_dir(), "--prefix", prefix])
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (prefix / "bin").iterdir()) == sorted(PROGRAMS)
    assert sorted(p.name for p in (prefix / "share/fieldvault/sql").glob("*.sql")) == \
        sorted(p.name for p in (REPO / "common/sql").glob("*.sql"))
    assert sorted(p.name for p in prefix.iterdir()) == ["bin", "lib", "share"]  # no etc/
    assert "/etc/fieldvault" not in r.stdout
    for u in UNITS:
        text = (prefix / "lib/systemd/system" / u).read_text()
        starts = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
        name = u.split("@")[0].split(".")[0]
        assert starts == [f"{prefix}/bin/{name} -c /etc/fieldvault/fieldvault.conf"], starts
        assert f"file://{prefix}/share/doc/fieldvault/operations.md" in text
    assert (prefix / "share/doc/fieldvault/operations.md").is_file()
