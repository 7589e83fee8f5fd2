"""fv-frontend's master: forks `processes` children, replaces one that dies, and on SIGTERM
exits 0 with all children gone. Runs on a second instance, not the session's front end."""
import os
import signal

import pytest

from fvharness import free_port, wait_until


@pytest.fixture()
def extra(frontend):
    port = free_port()
    p = frontend.start_frontend(name="frontend-extra", FV_LISTEN_PORT=port)
    p.port = port
    yield p
    if p.returncode is None:
        p.stop()


def test_master_forks_children(extra):
    wait_until(lambda: len(extra.children()) == 2, 30, what="2 children (processes = 2)")


def test_dead_child_is_replaced(frontend, extra):
    before = wait_until(lambda: (lambda ch: ch if len(ch) == 2 else None)(extra.children()), 30,
                        what="2 children")
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: len(extra.children()) == 2 and before[0] not in extra.children(), 30,
               what="the killed child to be replaced")
    assert extra.alive()
    wait_until(lambda: frontend.healthy(extra.port, extra), 30, what="/healthz after the restart")


def test_sigterm_exits_0_without_strays(frontend, extra):
    wait_until(lambda: len(extra.children()) == 2, 30, what="2 children")
    children = extra.children()
    assert extra.stop(signal.SIGTERM, timeout=30) == 0
    assert not extra.leftovers
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
