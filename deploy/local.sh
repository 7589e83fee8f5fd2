#!/usr/bin/env bash
# Runs a complete local Fieldvault in the foreground, the same shape as production: fv-balancer on
# https://127.0.0.1:${FV_PORT:-8443} in front of two fv-frontend instances (started by its
# spawner), two fv-workers, PostgreSQL 15 (WAL archived) and Redis (AOF, fsync always), until
# Ctrl-C or SIGTERM.
#
#   deploy/local.sh [--no-install] [--no-build]
#
# Everything lives in ${FV_LOCAL_DIR:-.local} (relative to the repository root, git-ignored):
# pg/ (data, log, wal-archive/), redis/ (AOF), tls/ (self-signed ECDSA certificate),
# fieldvault.conf, logs/, admin.key (made on the first run only). A second run reuses all of it.
#
# A worker or front end that dies (even SIGKILL) is restarted with a backoff (1 s doubling to
# 30 s), said here; the balancer routes around a dead front end meanwhile. Redis, PostgreSQL or
# the balancer dying stops the cluster. `fvctl status` (printed at start) shows every part.
#
# FV_BUILD_DIR picks the build directory (default build/).
# Ports (127.0.0.1): FV_PORT (the balancer, default 8443); the others follow from it unless set:
# FV_PG_PORT (54329 + d), FV_REDIS_PORT (63799 + d), FV_LB_ADMIN_PORT (balancer admin, 19400 + d),
# FV_FE_PORT_BASE (front ends, 20443 + 8 d), d = (FV_PORT - 8443) mod 1000; a derived port that is
# taken is replaced by the next free one. So two clusters with different FV_LOCAL_DIR and FV_PORT
# run side by side. PostgreSQL trusts local connections on 127.0.0.1: this is a developer's
# cluster, not a production one (see docs/ and deploy/ for those).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

install=1
build=1
for arg in "$@"; do
    case "$arg" in
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    -h | --help)
        sed -n '2,24p' "$0"
        exit 0
        ;;
    *)
        echo "local.sh: unknown option: $arg (see --help)" >&2
        exit 2
        ;;
    esac
done

LOCAL=${FV_LOCAL_DIR:-.local}
case "$LOCAL" in /*) ;; *) LOCAL="$ROOT/$LOCAL" ;; esac
PG_BIN=/usr/lib/postgresql/15/bin
BUILD=${FV_BUILD_DIR:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CONF="$LOCAL/fieldvault.conf"
CERT="$LOCAL/tls/cert.pem"
KEY="$LOCAL/tls/key.pem"
LOGS="$LOCAL/logs"
# spawn-frontend.sh writes the front ends' logs and pids next to the configuration file.
FE_PIDS="$LOCAL/spawned-frontends.pids"
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

say() { printf 'local.sh: %s\n' "$*"; }
die() {
    printf 'local.sh: error: %s\n' "$*" >&2
    exit 1
}
as_pg() {
    if [ "$IS_ROOT" = 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# True when something accepts TCP connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# True when process $1 exists and is not a zombie (the front ends are not our children: once
# their parent is gone nobody may reap them).
alive() {
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st%% *}" != Z ]
}
# True when process $1 is a front end of this cluster (its command line names our binary and
# configuration): pids in $FE_PIDS may have been reused by then.
our_frontend() {
    alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$BUILD/fv-frontend -c $CONF "
}

# Polls "$@" (a command) until it succeeds, at most $1 seconds; $2 names what we wait for and
# $3, if set, is a PID that must stay alive meanwhile.
poll() {
    local secs=$1 what=$2 pid=$3
    shift 3
    local deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "gave up waiting for $what after ${secs}s"
            return 1
        fi
        sleep 0.1 # polling period
    done
}

# ------------------------------------------------------------------ ports
HTTP_PORT=${FV_PORT:-8443}
case "$HTTP_PORT" in '' | *[!0-9]*) die "FV_PORT must be a port number, not '$HTTP_PORT'" ;; esac
# The other ports follow from FV_PORT (d = 0 for 8443: the historical defaults), so clusters
# with different FV_PORT never pick the same ones, even when started at the same moment.
d=$((((HTTP_PORT - 8443) % 1000 + 1000) % 1000))
CHOSEN=" "
# pick VAR DERIVED WHAT ENVVAR: VAR = $ENVVAR when set (it must be free), else DERIVED or the
# next free port after it.
pick() {
    local var=$1 port=$2 what=$3 env=$4 explicit=${!4:-}
    if [ -n "$explicit" ]; then
        case "$explicit" in '' | *[!0-9]*) die "$env must be a port number, not '$explicit'" ;; esac
        if port_busy "$explicit" || [[ "$CHOSEN" == *" $explicit "* ]]; then
            die "port $explicit (for $what) is already in use on 127.0.0.1. Is another local.sh \
running? Stop it, or choose another port with $env=..."
        fi
        port=$explicit
    else
        local tries=0
        while port_busy "$port" || [[ "$CHOSEN" == *" $port "* ]]; do
            port=$((port + 1))
            tries=$((tries + 1))
            [ "$tries" -lt 200 ] || die "no free port for $what near $2: set $env=..."
        done
        [ "$port" = "$2" ] || say "port $2 (for $what) is taken: using $port"
    fi
    CHOSEN="$CHOSEN$port "
    printf -v "$var" '%s' "$port"
}
pick HTTP_PORT "$HTTP_PORT" "the balancer (HTTPS)" FV_PORT
pick PG_PORT $((54329 + d)) "PostgreSQL" FV_PG_PORT
pick REDIS_PORT $((63799 + d)) "Redis" FV_REDIS_PORT
pick ADMIN_PORT $((19400 + d)) "the balancer's admin listener" FV_LB_ADMIN_PORT
pick FE_BASE $((20443 + 8 * d)) "the first front end" FV_FE_PORT_BASE
# The spawner itself takes the first free port from FE_BASE for each front end (at most 4).

# ------------------------------------------------------------------ processes we started
LB_PID=""
W_PID=("" "")        # the workers, by index
W_DUE=(0 0)          # when a dead worker is restarted (epoch s), 0: running
W_START=(0 0)        # when it was started (epoch s)
W_QUICK=(0 0)        # exits in a row, each within 60 s of its start (the backoff doubles)
REDIS_PID=""
PG_STARTED=0
PGDATA=""
LB_LOG_SEEN=0        # bytes of balancer.log already looked at for the terminal
cleaning=0

# Stops one of our children by PID: SIGTERM, SIGKILL after $3 seconds. Polls (a zombie counts as
# gone) rather than `wait`ing with a watchdog: nothing else is started meanwhile.
stop_pid() {
    local name=$1 pid=$2 secs=${3:-15}
    [ -n "$pid" ] || return 0
    if alive "$pid"; then
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$(($(date +%s) + secs))
        while alive "$pid"; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                kill -KILL "$pid" 2>/dev/null && say "$name did not stop in ${secs}s: SIGKILL"
                break
            fi
            sleep 0.1 # polling period
        done
    fi
    wait "$pid" 2>/dev/null || true # reaps it (it is gone: returns at once)
}

# Stops the front ends the balancer's spawner started (not our children: polled), by the pids
# spawn-frontend.sh recorded, checked to still be ours.
stop_frontends() {
    [ -f "$FE_PIDS" ] || return 0
    local pids=() pid
    while read -r pid; do
        case "$pid" in '' | *[!0-9]*) continue ;; esac
        if our_frontend "$pid"; then
            say "stopping fv-frontend (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done <"$FE_PIDS"
    [ "${#pids[@]}" -gt 0 ] || return 0
    local deadline=$(($(date +%s) + 30))
    for pid in "${pids[@]}"; do
        while alive "$pid"; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                kill -KILL "$pid" 2>/dev/null && say "fv-frontend (pid $pid) did not stop in 30s: SIGKILL"
                break
            fi
            sleep 0.1 # polling period
        done
    done
}

cleanup() {
    [ "$cleaning" = 1 ] && return 0
    cleaning=1
    trap - INT TERM
    # The balancer first: stopping, it restarts no front end.
    stop_pid "fv-balancer" "$LB_PID" 15
    stop_frontends
    stop_pid "worker 2" "${W_PID[1]}"
    stop_pid "worker 1" "${W_PID[0]}"
    stop_pid "redis-server" "$REDIS_PID" 30
    if [ "$PG_STARTED" = 1 ]; then
        say "stopping PostgreSQL"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null ||
            say "pg_ctl stop failed; see $PGDIR/postgresql.log"
    fi
}
on_signal() {
    echo
    say "shutting down"
    cleanup
    say "stopped; data kept in $LOCAL"
    exit 0
}
trap cleanup EXIT
trap on_signal INT TERM

show_log() {
    say "last lines of $1:"
    tail -n 30 "$1" | sed 's/^/    /' >&2 || true
}

# ------------------------------------------------------------------ dependencies and build
if [ "$install" = 1 ]; then
    "$ROOT/deploy/install-deps.sh"
fi
if [ "$build" = 1 ]; then
    say "building into $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target fv-frontend fv-worker fv-balancer fvctl
fi
for b in fv-frontend fv-worker fv-balancer fvctl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: the build did not produce it"
done

# ------------------------------------------------------------------ directories
mkdir -p "$LOCAL" "$LOGS" "$LOCAL/redis" "$LOCAL/tls"
chmod 755 "$LOCAL"
if [ -f "$FE_PIDS" ]; then
    while read -r pid; do
        case "$pid" in '' | *[!0-9]*) continue ;; esac
        our_frontend "$pid" && die "fv-frontend pid $pid of $CONF is still running (an earlier \
local.sh that was killed?). Stop it with: kill $pid"
    done <"$FE_PIDS"
    rm -f "$FE_PIDS"
fi
PGDIR="$LOCAL/pg"
if [ "$IS_ROOT" = 1 ] && [ ! -e "$PGDIR" ]; then
    if ! runuser -u postgres -- test -x "$LOCAL"; then
        # PostgreSQL runs as `postgres`, which cannot reach a directory under, say, /root: keep
        # its data in postgres' home and link it from here.
        real="/var/lib/postgresql/fieldvault-local-$(printf '%s' "$LOCAL" | sha256sum | cut -c1-12)"
        mkdir -p "$real"
        chown postgres:postgres "$real"
        chmod 700 "$real"
        ln -s "$real" "$PGDIR"
        say "the postgres user cannot reach $LOCAL: PostgreSQL data is in $real ($PGDIR links there)"
    fi
fi
mkdir -p "$PGDIR/"
PGDIR=$(readlink -f "$PGDIR") # postgres may reach the real directory only, not the link
[ "$IS_ROOT" = 1 ] && chown postgres:postgres "$PGDIR"
PGDATA="$PGDIR/data"
WAL_ARCHIVE="$PGDIR/wal-archive"

# ------------------------------------------------------------------ PostgreSQL
if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $PGDATA"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C >"$LOGS/initdb.log" ||
        {
            show_log "$LOGS/initdb.log"
            die "initdb failed"
        }
    as_pg sh -c "cat >> '$PGDATA/postgresql.conf'" <<'EOF'
# --- deploy/local.sh: loopback only, no unix socket (the port is given on the command line)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
EOF
else
    say "reusing the PostgreSQL cluster in $PGDATA"
fi
# WAL archiving from the first start (a cluster made by an older local.sh gets it too): every
# completed WAL segment is copied into $WAL_ARCHIVE, never overwriting one already there.
if ! grep -q "^include_if_exists = 'fieldvault-local.conf'" "$PGDATA/postgresql.conf"; then
    as_pg sh -c "cat >> '$PGDATA/postgresql.conf'" <<'EOF'
# --- deploy/local.sh: WAL archiving (rewritten by local.sh on every start)
include_if_exists = 'fieldvault-local.conf'
EOF
fi
as_pg mkdir -p "$WAL_ARCHIVE"
as_pg sh -c "cat > '$PGDATA/fieldvault-local.conf'" <<EOF
# Written by deploy/local.sh on every start.
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $WAL_ARCHIVE/%f && cp %p $WAL_ARCHIVE/%f'
archive_timeout = 60
EOF
if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    die "the PostgreSQL of $PGDATA is already running (an earlier local.sh that was killed?). \
Stop it with: $([ "$IS_ROOT" = 1 ] && echo 'runuser -u postgres -- ')$PG_BIN/pg_ctl -D $PGDATA stop"
fi
say "starting PostgreSQL on 127.0.0.1:$PG_PORT (WAL archived into $WAL_ARCHIVE)"
if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDIR/postgresql.log" -o "-p $PG_PORT" -w -t 60 \
    start >/dev/null; then
    show_log "$PGDIR/postgresql.log"
    die "PostgreSQL did not start"
fi
PG_STARTED=1
psql_su() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'fieldvault'")" != 1 ]; then
    psql_su -c "CREATE ROLE fieldvault LOGIN"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'fieldvault'")" != 1 ]; then
    psql_su -c "CREATE DATABASE fieldvault OWNER fieldvault"
fi

# ------------------------------------------------------------------ Redis
say "starting Redis on 127.0.0.1:$REDIS_PORT (AOF, appendfsync always)"
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$LOCAL/redis" \
    --appendonly yes --appendfsync always --daemonize no >>"$LOGS/redis.log" 2>&1 &
REDIS_PID=$!
poll 30 "Redis" "$REDIS_PID" sh -c "[ \"\$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping)\" = PONG ]" || {
    show_log "$LOGS/redis.log"
    die "Redis did not start"
}

# ------------------------------------------------------------------ certificate and config
if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
    say "making a self-signed ECDSA P-256 certificate for 127.0.0.1"
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$KEY" -out "$CERT" -days 825 -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>"$LOGS/openssl.log"
    ) || die "openssl failed: $(cat "$LOGS/openssl.log")"
    chmod 644 "$CERT"
fi

MASTER_KEY="$LOCAL/keys/master.key"
if [ ! -s "$MASTER_KEY" ]; then
    say "making the master key file (signs session tokens, seals TOTP secrets)"
    mkdir -p "$LOCAL/keys"
    chmod 700 "$LOCAL/keys"
    (umask 077 && openssl rand -hex 32 >"$MASTER_KEY") || die "openssl rand failed"
fi
METRICS_TOKEN="$LOCAL/keys/metrics.token"
if [ ! -s "$METRICS_TOKEN" ]; then
    say "making the /metrics bearer token"
    (umask 077 && openssl rand -hex 32 >"$METRICS_TOKEN") || die "openssl rand failed"
fi


cat >"$CONF" <<EOF
# Written by deploy/local.sh on every start (edit deploy/local.sh, or override keys with FV_*
# environment variables). Every key is documented in deploy/fieldvault.conf.
[common]
pg_dsn = host=127.0.0.1 port=$PG_PORT dbname=fieldvault user=fieldvault
redis_host = 127.0.0.1
redis_port = $REDIS_PORT
key_file = $MASTER_KEY

[frontend]
# Each instance listens on the port the balancer's spawner gives it (FV_LISTEN_PORT).
listen_addr = 127.0.0.1
listen_port = $FE_BASE
tls_cert = $CERT
tls_key = $KEY
processes = 1
spool_dir = $LOCAL/spool
metrics_token_file = $METRICS_TOKEN

[balancer]
proxy_addr = 127.0.0.1
proxy_port = $HTTP_PORT
admin_addr = 127.0.0.1
admin_port = $ADMIN_PORT
backends = ""
check_ca_file = $CERT
check_interval_ms = 1000
rise = 2
fall = 2
min_backends = 2
max_backends = 4
spawn_command = "FV_CONFIG=$CONF FV_BUILD_DIR=$BUILD $ROOT/deploy/spawn-frontend.sh {port}"
spawn_addr = 127.0.0.1
spawn_port_base = $FE_BASE
spawn_cooldown_ms = 1000
drain_timeout_s = 5

[fvctl]
status_balancer = 127.0.0.1:$ADMIN_PORT
status_spool_dir = $LOCAL/spool
EOF

# The programs read FV_<KEY> overrides: keep this script's own variables away from them.
run_env=(env -u FV_PORT -u FV_PG_PORT -u FV_REDIS_PORT -u FV_LB_ADMIN_PORT -u FV_FE_PORT_BASE
    -u FV_LOCAL_DIR -u FV_BUILD_DIR)

say "migrating the database"
"${run_env[@]}" "$BUILD/fvctl" -c "$CONF" migrate >>"$LOGS/fvctl.log" 2>&1 || {
    show_log "$LOGS/fvctl.log"
    die "fvctl migrate failed"
}

ADMIN_KEY_FILE="$LOCAL/admin.key"
if [ ! -s "$ADMIN_KEY_FILE" ]; then
    say "creating the admin account admin@example.org"
    (
        umask 077
        "${run_env[@]}" "$BUILD/fvctl" -c "$CONF" create-admin --email admin@example.org \
            --name Admin >"$ADMIN_KEY_FILE.new" 2>>"$LOGS/fvctl.log"
    ) || {
        rm -f "$ADMIN_KEY_FILE.new"
        show_log "$LOGS/fvctl.log"
        die "fvctl create-admin failed (if admin.key was deleted after the first run, the admin \
exists already: make a key for another user with fvctl create-user)"
    }
    mv "$ADMIN_KEY_FILE.new" "$ADMIN_KEY_FILE"
fi
chmod 600 "$ADMIN_KEY_FILE"


# ------------------------------------------------------------------ our programs
# Balancer status as JSON on stdout (plain HTTP on loopback).
lb_status() { curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/status"; }
# True when at least $1 front ends are in rotation.
frontends_up() {
    [ "$(lb_status | grep -o '"state":"\(up\|degraded\)"' | wc -l)" -ge "$1" ]
}

say "starting fv-balancer on https://127.0.0.1:$HTTP_PORT (admin http://127.0.0.1:$ADMIN_PORT)"
: >>"$LOGS/balancer.log"
LB_LOG_SEEN=$(stat -c %s "$LOGS/balancer.log")
"${run_env[@]}" setsid "$BUILD/fv-balancer" -c "$CONF" </dev/null >>"$LOGS/balancer.log" 2>&1 &
LB_PID=$!
say "waiting for its spawner to start two front ends (from port $FE_BASE)"
poll 90 "two front ends in rotation" "$LB_PID" frontends_up 2 || {
    show_log "$LOGS/balancer.log"
    for f in "$LOCAL"/frontend-*.log; do [ -f "$f" ] && show_log "$f"; done
    die "the front ends did not come up behind the balancer"
}
poll 30 "the balancer" "$LB_PID" curl -fsS --cacert "$CERT" "https://127.0.0.1:$HTTP_PORT/readyz" || {
    show_log "$LOGS/balancer.log"
    die "https://127.0.0.1:$HTTP_PORT/readyz does not answer through the balancer"
}

# start_worker I: worker I+1 with a stable consumer name, so that a restarted worker finds what
# it had taken and not acknowledged.
start_worker() {
    local i=$1 n=$(($1 + 1))
    "${run_env[@]}" FV_CONSUMER_NAME="local-w$n" setsid "$BUILD/fv-worker" -c "$CONF" \
        </dev/null >>"$LOGS/worker-$n.log" 2>&1 &
    W_PID[$i]=$!
    W_START[$i]=$(date +%s)
    W_DUE[$i]=0
}
say "starting two fv-workers"
start_worker 0
start_worker 1

cat <<EOF

Fieldvault is running:
  API        https://127.0.0.1:$HTTP_PORT  (fv-balancer; certificate: $CERT)
  front ends $(lb_status | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ') (spawned by the balancer, logs $LOCAL/frontend-PORT.log)
  balancer   admin http://127.0.0.1:$ADMIN_PORT/status  (log $LOGS/balancer.log)
  workers    2 (logs $LOGS/worker-1.log, worker-2.log)
  PostgreSQL 127.0.0.1:$PG_PORT  (WAL archive $WAL_ARCHIVE)
  Redis      127.0.0.1:$REDIS_PORT
  admin key  $ADMIN_KEY_FILE
  state      $BUILD/fvctl -c $CONF status   (every part, its health, queue, spool, dead letters)
  metrics    curl --cacert $CERT -H "Authorization: Bearer \$(cat $METRICS_TOKEN)" https://127.0.0.1:$HTTP_PORT/metrics
  logs       $LOGS/  (PostgreSQL: $PGDIR/postgresql.log)
  config     $CONF

Submit a first response (paste into bash; needs curl and jq):

  FV=https://127.0.0.1:$HTTP_PORT; CA=$CERT; KEY=\$(cat $ADMIN_KEY_FILE)
  fv() { curl -sS --cacert "\$CA" -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' "\$@"; }
  ME=\$(fv \$FV/v1/me | jq -r .id)
  ORG=\$(fv -d '{"name":"My organisation"}' \$FV/v1/orgs | jq -r .id)
  SURVEY=\$(fv -d '{"org_id":"'\$ORG'","name":"Households","definition":{"questions":[
      {"name":"household","type":"text","label":"Household name","required":true},
      {"name":"members","type":"integer","label":"Members","required":true,"constraint":{"min":1,"max":50}}]}}' \\
      \$FV/v1/surveys | jq -r .id)
  DEP=\$(fv -d '{"name":"Round 1","roles":{"enumerators":[{"type":"user","id":"'\$ME'"}]}}' \\
      \$FV/v1/surveys/\$SURVEY/deployments | jq -r .id)
  RID=\$(fv -d '{"data":{"household":"Mwangi","members":5}}' \$FV/v1/deployments/\$DEP/responses | jq -r .id)
  fv \$FV/v1/responses/\$RID | jq .      # not_found for a moment until a worker has written it
  fv "\$FV/v1/surveys/\$SURVEY/responses?limit=10" | jq .

Or sign up and sign in with a password (a session token works like a key):

  curl -sS --cacert "\$CA" -H 'Content-Type: application/json' \$FV/v1/users \\
      -d '{"email":"ada@example.org","name":"Ada","password":"tangerine-ladder-quietly-47"}' | jq .
  TOKEN=\$(curl -sS --cacert "\$CA" -H 'Content-Type: application/json' \$FV/v1/auth/login \\
      -d '{"email":"ada@example.org","password":"tangerine-ladder-quietly-47"}' | jq -r .token)
  curl -sS --cacert "\$CA" -H "Authorization: Bearer \$TOKEN" \$FV/v1/me | jq .

Press Ctrl-C to stop (the data stays in $LOCAL).
EOF
say "ready: https://127.0.0.1:$HTTP_PORT"

# ------------------------------------------------------------------ foreground: supervision
# Says on the terminal what the balancer logged about its front ends since the last look: state
# changes, exits and restarts (its log has one JSON object per line).
relay_balancer() {
    local size
    size=$(stat -c %s "$LOGS/balancer.log" 2>/dev/null) || return 0
    [ "$size" -gt "$LB_LOG_SEEN" ] || return 0
    tail -c +$((LB_LOG_SEEN + 1)) "$LOGS/balancer.log" | head -c $((size - LB_LOG_SEEN)) |
        grep -E '"msg":"(backend .* state |spawned front end .* (killed|exited)|spawning a front end|cannot spawn)' |
        sed -E -e 's/.*"msg":"([^"]*)".*/local.sh: balancer: \1/' -e 's/: pid [0-9]+ runs: .*//' || true
    LB_LOG_SEEN=$size
}

# Restart backoff of a worker: 1 s, doubled for each exit in a row within 60 s of its start, at
# most 30 s.
backoff() {
    local n=$1 s=1
    while [ "$n" -gt 0 ] && [ "$s" -lt 30 ]; do
        s=$((s * 2))
        n=$((n - 1))
    done
    [ "$s" -le 30 ] || s=30
    echo "$s"
}

LB_LOG_SEEN=$(stat -c %s "$LOGS/balancer.log") # from now on (start-up was said above)
# From here a signal only sets a flag that the loop acts on: a trap runs where the shell is when
# the signal comes, possibly inside `as_pg ... >/dev/null`, whose redirection would then swallow
# everything the shutdown says.
stop_requested=0
nap=""
trap 'stop_requested=1' INT TERM
while :; do
    if [ "$stop_requested" = 1 ]; then
        kill "$nap" 2>/dev/null || true
        on_signal
    fi
    now=$(date +%s)
    for i in 0 1; do
        n=$((i + 1))
        pid=${W_PID[$i]}
        if [ "${W_DUE[$i]}" = 0 ] && ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            [ $((now - W_START[i])) -lt 60 ] || W_QUICK[$i]=0
            delay=$(backoff "${W_QUICK[$i]}")
            W_QUICK[$i]=$((W_QUICK[i] + 1))
            W_DUE[$i]=$((now + delay))
            if [ "$rc" -gt 128 ]; then how="killed by signal $((rc - 128))"; else how="exited with status $rc"; fi
            say "worker $n (pid $pid) $how: restarting it in ${delay}s (see $LOGS/worker-$n.log)"
        elif [ "${W_DUE[$i]}" != 0 ] && [ "$now" -ge "${W_DUE[$i]}" ]; then
            start_worker "$i"
            say "worker $n restarted (pid ${W_PID[$i]})"
        fi
    done
    for spec in "fv-balancer:$LB_PID:$LOGS/balancer.log" "redis-server:$REDIS_PID:$LOGS/redis.log"; do
        IFS=: read -r name pid log <<<"$spec"
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            say "$name (pid $pid) exited unexpectedly (status $rc)"
            show_log "$log"
            say "stopping the rest"
            exit 1
        fi
    done
    tick=$((${tick:-0} + 1))
    if [ $((tick % 10)) = 0 ] && ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        say "PostgreSQL stopped unexpectedly"
        show_log "$PGDIR/postgresql.log"
        say "stopping the rest"
        PG_STARTED=0
        exit 1
    fi
    relay_balancer
    # A background sleep that `wait` waits for: a signal interrupts the wait at once.
    [ "$stop_requested" = 0 ] || continue
    sleep 0.5 &
    nap=$!
    wait "$nap" 2>/dev/null || true
done
