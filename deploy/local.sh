#!/usr/bin/env bash
# Runs a complete local Fieldvault in the foreground: PostgreSQL 15, Redis (AOF, fsync always),
# fv-frontend on https://127.0.0.1:${FV_PORT:-8443} and two fv-workers, until Ctrl-C or SIGTERM.
#
#   deploy/local.sh [--no-install] [--no-build]
#
# Everything lives in ${FV_LOCAL_DIR:-.local} (relative to the repository root, git-ignored):
# pg/ (data, log), redis/ (AOF), tls/ (self-signed ECDSA certificate), fieldvault.conf, logs/,
# admin.key (made on the first run only). A second run reuses all of it.
#
# FV_BUILD_DIR picks the build directory (default build/).
# Ports: FV_PORT (HTTPS, default 8443), FV_PG_PORT (54329), FV_REDIS_PORT (63799), chosen so as
# not to collide with system servers. PostgreSQL trusts local connections on 127.0.0.1: this is
# a developer's cluster, not a production one (see docs/ and deploy/ for those).
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
        sed -n '2,14p' "$0"
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
HTTP_PORT=${FV_PORT:-8443}
PG_PORT=${FV_PG_PORT:-54329}
REDIS_PORT=${FV_REDIS_PORT:-63799}
PG_BIN=/usr/lib/postgresql/15/bin
BUILD=${FV_BUILD_DIR:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CONF="$LOCAL/fieldvault.conf"
CERT="$LOCAL/tls/cert.pem"
KEY="$LOCAL/tls/key.pem"
LOGS="$LOCAL/logs"
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

# ------------------------------------------------------------------ processes we started
FE_PID=""
W1_PID=""
W2_PID=""
REDIS_PID=""
PG_STARTED=0
PGDATA=""
cleaning=0

# Stops one of our children by PID: SIGTERM, SIGKILL after $3 seconds.
stop_pid() {
    local name=$1 pid=$2 secs=${3:-15}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # A watchdog enforces the deadline; `wait` returns as soon as the process is gone.
    (
        sleep "$secs"
        kill -KILL "$pid" 2>/dev/null && echo "local.sh: $name did not stop in ${secs}s: SIGKILL"
    ) &
    local watchdog=$!
    wait "$pid" 2>/dev/null || true
    kill "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
}

cleanup() {
    [ "$cleaning" = 1 ] && return 0
    cleaning=1
    trap - INT TERM
    stop_pid "worker 2" "$W2_PID"
    stop_pid "worker 1" "$W1_PID"
    stop_pid "fv-frontend" "$FE_PID" 30
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
    cmake --build "$BUILD" -j"$(nproc)" --target fv-frontend fv-worker fvctl
fi
for b in fv-frontend fv-worker fvctl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: the build did not produce it"
done

# ------------------------------------------------------------------ ports
for spec in "$HTTP_PORT:HTTPS front end:FV_PORT" "$PG_PORT:PostgreSQL:FV_PG_PORT" \
    "$REDIS_PORT:Redis:FV_REDIS_PORT"; do
    IFS=: read -r port what var <<<"$spec"
    if port_busy "$port"; then
        die "port $port (for $what) is already in use on 127.0.0.1. Is another local.sh running? \
Stop it, or choose another port with $var=..."
    fi
done

# ------------------------------------------------------------------ directories
mkdir -p "$LOCAL" "$LOGS" "$LOCAL/redis" "$LOCAL/tls"
chmod 755 "$LOCAL"
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
if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    die "the PostgreSQL of $PGDATA is already running (an earlier local.sh that was killed?). \
Stop it with: $([ "$IS_ROOT" = 1 ] && echo 'runuser -u postgres -- ')$PG_BIN/pg_ctl -D $PGDATA stop"
fi
say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
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
listen_addr = 127.0.0.1
listen_port = $HTTP_PORT
tls_cert = $CERT
tls_key = $KEY
processes = 2
spool_dir = $LOCAL/spool
metrics_token_file = $METRICS_TOKEN
EOF

# The programs read FV_<KEY> overrides: keep this script's own variables away from them.
run_env=(env -u FV_PORT -u FV_PG_PORT -u FV_LOCAL_DIR -u FV_BUILD_DIR)

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
say "starting fv-frontend on https://127.0.0.1:$HTTP_PORT"
"${run_env[@]}" setsid "$BUILD/fv-frontend" -c "$CONF" >>"$LOGS/frontend.log" 2>&1 &
FE_PID=$!
poll 60 "fv-frontend" "$FE_PID" curl -fsS --cacert "$CERT" "https://127.0.0.1:$HTTP_PORT/healthz" || {
    show_log "$LOGS/frontend.log"
    die "fv-frontend did not become healthy"
}

say "starting two fv-workers"
# Stable consumer names: a restarted worker finds what it had taken and not acknowledged.
"${run_env[@]}" FV_CONSUMER_NAME=local-w1 setsid "$BUILD/fv-worker" -c "$CONF" >>"$LOGS/worker-1.log" 2>&1 &
W1_PID=$!
"${run_env[@]}" FV_CONSUMER_NAME=local-w2 setsid "$BUILD/fv-worker" -c "$CONF" >>"$LOGS/worker-2.log" 2>&1 &
W2_PID=$!

cat <<EOF

Fieldvault is running:
  API       https://127.0.0.1:$HTTP_PORT  (certificate: $CERT)
  admin key $ADMIN_KEY_FILE
  metrics   curl --cacert $CERT -H "Authorization: Bearer \$(cat $METRICS_TOKEN)" https://127.0.0.1:$HTTP_PORT/metrics
  logs      $LOGS/  (PostgreSQL: $PGDIR/postgresql.log)
  config    $CONF

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

# ------------------------------------------------------------------ foreground
while :; do
    rc=0
    wait -n "$FE_PID" "$W1_PID" "$W2_PID" "$REDIS_PID" || rc=$?
    for spec in "fv-frontend:$FE_PID:frontend.log" "worker 1:$W1_PID:worker-1.log" \
        "worker 2:$W2_PID:worker-2.log" "redis-server:$REDIS_PID:redis.log"; do
        IFS=: read -r name pid log <<<"$spec"
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) exited unexpectedly (status $rc)"
            show_log "$LOGS/$log"
            say "stopping the rest"
            exit 1
        fi
    done
done
