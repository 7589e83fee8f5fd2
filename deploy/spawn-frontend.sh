#!/bin/sh
# Starts one more fv-frontend for the local cluster, detached, on 127.0.0.1:PORT, and prints its
# pid on stdout (fv-balancer's spawn_command reads it). Logs go next to the configuration file.
#
#   FV_CONFIG=/path/fieldvault.conf deploy/spawn-frontend.sh PORT
#
# FV_FRONTEND_BIN names the binary (default: $FV_BUILD_DIR/fv-frontend, FV_BUILD_DIR defaulting
# to build/ in the repository). The front end runs in its own session (setsid): stopping the
# balancer does not stop it; stop it with `kill PID`. Every pid is also appended to
# spawned-frontends.pids next to the configuration file, so whoever runs the cluster can stop
# everything the balancer started.
set -eu

usage() {
    echo "usage: FV_CONFIG=FILE $0 PORT" >&2
    exit 2
}
[ $# -eq 1 ] || usage
port=$1
case "$port" in
'' | *[!0-9]*) usage ;;
esac
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || usage
conf=${FV_CONFIG:-}
[ -n "$conf" ] && [ -r "$conf" ] || {
    echo "spawn-frontend.sh: FV_CONFIG must name a readable configuration file" >&2
    exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FV_BUILD_DIR:-$root/build}
bin=${FV_FRONTEND_BIN:-$build/fv-frontend}
[ -x "$bin" ] || {
    echo "spawn-frontend.sh: $bin is not built" >&2
    exit 2
}
log="$(dirname "$conf")/frontend-$port.log"
# A background job of a non-interactive shell is not a process-group leader, so setsid(1)
# calls setsid() and execs the front end in place: $! is the front end's own pid.
FV_LISTEN_PORT=$port setsid "$bin" -c "$conf" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >>"$(dirname "$conf")/spawned-frontends.pids"
echo "$pid"
