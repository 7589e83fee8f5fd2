"""The start every program shares (common/fv_cli.c): --version, --help, the default configuration
file, every bad key reported at once, exit status 2 for a bad configuration; fvctl's commands
answer --help. Needs only the build, no servers."""
import re
import subprocess

import pytest

from fvharness import binary, child_env

PROGRAMS = ["fv-frontend", "fv-worker", "fv-balancer", "fvctl"]
FVCTL_COMMANDS = ["migrate", "create-admin", "create-user", "queue", "dead-letters", "requeue", "spool-replay",
                  "reseal", "quarantine", "rotate-master-key", "rotate-data-key"]


def run(*argv, **env):
    return subprocess.run([*map(str, argv)], capture_output=True, text=True, env=child_env(**env), timeout=30)


@pytest.mark.parametrize("name", PROGRAMS)
def test_version_and_help(name):
    r = run(binary(name), "--version")
    assert r.returncode == 0 and re.fullmatch(rf"{name} \d+\.\d+\.\d+\n", r.stdout), (r.stdout, r.stderr)
    r = run(binary(name), "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {name} "), r.stdout
    for flag in ("--config FILE", "--check-config", "--print-defaults", "--version", "/etc/fieldvault/fieldvault.conf",
                 "2 bad usage or configuration"):
        assert flag in r.stdout, (flag, r.stdout)
    r = run(binary(name), "--bogus")
    assert r.returncode == 2 and "usage:" in r.stderr


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_bad_key_at_once_exit_2(name, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[common]\n"
                    "redis_port = 0\n"          # 2
                    "log_level = loud\n"        # 3
                    "no_such_key = 1\n")        # 4
    r = run(binary(name), "-c", conf, "--check-config")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if f"{conf}:" in l]
    assert len(lines) == 3, r.stderr
    assert f"{name}: {conf}:2: redis_port: must be between 1 and 65535, not 0" in lines
    assert any(l.startswith(f"{name}: {conf}:3: log_level: ") for l in lines), lines
    assert any(l.startswith(f"{name}: {conf}:4: no_such_key: ") for l in lines), lines


def test_fv_config_names_the_default_file(tmp_path):
    conf = tmp_path / "fieldvault.conf"
    conf.write_text("[worker]\nbatch_size = 0\n")
    r = run(binary("fv-worker"), "--check-config", FV_CONFIG=conf)
    assert r.returncode == 2 and f"{conf}:2: batch_size: must be between 1 and 100000, not 0" in r.stderr, r.stderr
    r = run(binary("fv-worker"), "--check-config", FV_CONFIG=conf, FV_BATCH_SIZE=7)
    assert r.returncode == 0 and f"configuration ok ({conf})" in r.stdout, r.stderr
    r = run(binary("fv-worker"), "--check-config", FV_CONFIG=tmp_path / "missing.conf")
    assert r.returncode == 2 and "missing.conf" in r.stderr
    r = run(binary("fv-worker"), "--print-defaults")  # FV_CONFIG="" (child_env): no file at all
    assert r.returncode == 0 and "batch_size = 500" in r.stdout and "# 1..100000" not in r.stdout
    assert "# between 1 and 100000\nbatch_size = 500\n" in r.stdout


@pytest.mark.parametrize("command", FVCTL_COMMANDS)
def test_fvctl_commands_answer_help(command, tmp_path):
    # Even with a configuration that would not load: help needs none.
    conf = tmp_path / "bad.conf"
    conf.write_text("[common]\nredis_port = 0\n")
    for argv in ([command, "--help"], ["-c", conf, command, "--help"], ["help", command]):
        r = run(binary("fvctl"), *argv)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: fvctl [-c FILE] {command}"), (argv, r.stdout, r.stderr)
    r = run(binary("fvctl"), "migrate", "--help")
    assert "../share/fieldvault/sql" in r.stdout and "--sql-dir" in r.stdout and "sql_dir" in r.stdout


def test_fvctl_bad_configuration_exits_2(tmp_path):
    r = run(binary("fvctl"), "queue", FV_REDIS_PORT="70000")
    assert r.returncode == 2 and "environment FV_REDIS_PORT: redis_port:" in r.stderr, r.stderr
    r = run(binary("fvctl"), "migrate", FV_SQL_DIR=tmp_path / "nowhere")
    assert r.returncode == 2 and "sql_dir" in r.stderr, r.stderr
    r = run(binary("fvctl"), "no-such-command")
    assert r.returncode == 2 and "unknown command" in r.stderr
