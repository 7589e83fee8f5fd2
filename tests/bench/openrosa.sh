#!/usr/bin/env bash
# OpenRosa submission benchmark (issue 13): for each case, a throwaway local cluster with
# deploy/local.sh (PostgreSQL, Redis with appendfsync always, fv-balancer in front of two
# fv-frontend instances of one child each, two fv-workers), a survey made from the case's XForm,
# a deployment, an app user (its token in the URL, as ODK Collect uses it after scanning the app
# user's QR code), then fv-bench --openrosa with --pg (committed = rows in PostgreSQL), then each
# process's peak memory and CPU time, and the cluster stopped and removed.
#
#   tests/bench/openrosa.sh [CASE ...] [-- fv-bench options]
#
# CASE: small (fixture forms/simple.xml, the instance instances/simple/one.xml with a fresh
# uuid:<id> instanceID), 250q (soak/250q-form.xml and soak/250q-submission.template.xml:
# {{uuid}}, and a fresh 6-digit number for each of the 250 {{randInt}}), photo (forms/binaryType.xml,
# its image question file1 naming one JPEG attachment of FV_BENCH_PHOTO_KB KiB, default 256).
# Default: all three. fv-bench options default to --connections 32 --duration 20.
#
# Environment: FV_BENCH_ROUNDS (default 1: each case that many times, the cases alternating, a
# fresh cluster each time); FV_BENCH_AUTH=token (default) or basic (a signed-up user with a
# password, HTTP Basic as Collect sends it with a username and password); FV_BUILD_DIR (default
# build/); FV_ODK_FIXTURES (default /work/shared/fixtures/odk); FV_BENCH_OUT (a directory: each
# run's fv-bench output and summary kept there); FV_BENCH_AFTER (a shell command run after each
# run's measurements, before the cluster stops, with BENCH_PGURL, BENCH_DEPLOYMENT, BENCH_SURVEY
# and BENCH_DIR set: for looking into the database a run left); FV_BENCH_PORT, FV_BENCH_PG_PORT,
# FV_BENCH_REDIS_PORT. The rate limits of sessions and API keys are off (one app user drives the
# whole load).
#
# Peak memory: VmHWM of /proc/PID/status (the kernel's high-water mark of the resident set over
# the process's life: setup, load and drain), read after the drain for every fv-frontend process
# (master and children), fv-worker and redis-server that this cluster's deploy/local.sh started
# (found as its children and grandchildren by PID). CPU: utime + stime of the same processes and
# of the PostgreSQL backends (children of this cluster's postmaster), before and after fv-bench,
# per accepted submission. The last line of each run is SUMMARY {json}: rates, latency, counts,
# the largest VmHWM of each kind in MiB and the CPU microseconds per submission by kind.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${FV_BUILD_DIR:-build}
PORT=${FV_BENCH_PORT:-18443}
PG_PORT=${FV_BENCH_PG_PORT:-15432}
REDIS_PORT=${FV_BENCH_REDIS_PORT:-16379}
FIX=${FV_ODK_FIXTURES:-/work/shared/fixtures/odk}
ROUNDS=${FV_BENCH_ROUNDS:-1}
AUTH=${FV_BENCH_AUTH:-token}
PHOTO_KB=${FV_BENCH_PHOTO_KB:-256}
OUT=${FV_BENCH_OUT:-}
PASSWORD=bench-lantern-quartz-41-heron

cases=()
while [ $# -gt 0 ]; do
    case "$1" in
    small | 250q | photo) cases+=("$1") ;;
    --) shift; break ;;
    *) echo "openrosa.sh: unknown case \"$1\" (small, 250q, photo; fv-bench options after --)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#cases[@]} -eq 0 ] && cases=(small 250q photo)
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--connections 32 --duration 20)
case "$AUTH" in token | basic) ;; *) echo "openrosa.sh: FV_BENCH_AUTH is token or basic" >&2; exit 2 ;; esac
[ -x "$BUILD/fv-bench" ] || { echo "openrosa.sh: $BUILD/fv-bench is missing (cmake --build $BUILD)" >&2; exit 2; }
[ -f "$FIX/forms/simple.xml" ] || { echo "openrosa.sh: no ODK fixtures in $FIX" >&2; exit 2; }
[ -n "$OUT" ] && mkdir -p "$OUT"

DIR=
CLUSTER_PID=
stop_cluster() {
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM "$CLUSTER_PID"
        wait "$CLUSTER_PID" 2>/dev/null || true
    fi
    CLUSTER_PID=
    [ -n "$DIR" ] && rm -rf "$DIR" "$DIR.log"
    DIR=
}
trap stop_cluster EXIT

start_cluster() {
    DIR=$(mktemp -d /tmp/fv-bench.XXXXXX)
    chmod 755 "$DIR"
    FV_LOCAL_DIR="$DIR" FV_PORT=$PORT FV_PG_PORT=$PG_PORT FV_REDIS_PORT=$REDIS_PORT \
        FV_API_KEY_RATE_LIMIT=0 FV_SESSION_RATE_LIMIT=0 FV_BUILD_DIR="$BUILD" \
        deploy/local.sh --no-install --no-build >"$DIR.log" 2>&1 &
    CLUSTER_PID=$!
    for _ in $(seq 1200); do
        [ -s "$DIR/admin.key" ] && grep -q "Fieldvault is running" "$DIR.log" &&
            curl -fsS --cacert "$DIR/tls/cert.pem" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$CLUSTER_PID" 2>/dev/null || { cat "$DIR.log"; echo "openrosa.sh: the cluster did not start" >&2; exit 1; }
        sleep 0.1 # polling the cluster's start
    done
    echo "openrosa.sh: the cluster did not start within 120 s" >&2
    exit 1
}

api() { # METHOD PATH [BODY-FILE|BODY] -> the JSON reply
    local data=()
    if [ $# -ge 3 ]; then
        if [ -f "$3" ]; then data=(--data-binary "@$3"); else data=(-d "$3"); fi
    fi
    curl -fsS --cacert "$DIR/tls/cert.pem" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
        -X "$1" "https://127.0.0.1:$PORT$2" "${data[@]}"
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
PGURL="host=127.0.0.1 port=$PG_PORT dbname=fieldvault user=fieldvault"

# PIDs of the cluster's processes: name pid per line (fv-frontend master and children,
# fv-worker, redis-server, fv-balancer), found from deploy/local.sh's PID.
cluster_pids() {
    local p c comm
    # The front ends are the balancer's children (its spawner starts them, it is their
    # subreaper).
    for p in $(pgrep -P "$CLUSTER_PID") $(pgrep -P "$(pgrep -P "$CLUSTER_PID" -x fv-balancer || echo 0)"); do
        comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
        case "$comm" in
        fv-balancer) echo "balancer $p" ;;
        fv-frontend)
            echo "frontend-master $p"
            for c in $(pgrep -P "$p"); do echo "frontend-child $c"; done
            ;;
        fv-worker) echo "worker $p" ;;
        redis-server) echo "redis $p" ;;
        esac
    done
    local pm
    pm=$(head -1 "$DIR/pg/data/postmaster.pid" 2>/dev/null) || return 0
    for c in $(pgrep -P "$pm"); do echo "postgres $c"; done
}
# kind pid jiffies (utime + stime) per line
cpu_sample() {
    local kind pid
    cluster_pids | while read -r kind pid; do
        [ -r "/proc/$pid/stat" ] || continue
        awk -v k="$kind" -v p="$pid" '{ sub(/.*\) /, ""); print k, p, $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || true
    done
}

# Writes the instance template of case $1 to $2 and prints "FORM-FILE [ATTACHMENT]".
prepare_case() {
    case "$1" in
    small)
        sed 's#<instanceID>one</instanceID>#<instanceID>uuid:{{uuid}}</instanceID>#' "$FIX/instances/simple/one.xml" >"$2"
        echo "$FIX/forms/simple.xml"
        ;;
    250q)
        cp "$FIX/soak/250q-submission.template.xml" "$2"
        echo "$FIX/soak/250q-form.xml"
        ;;
    photo)
        # A synthetic photo: JPEG's start and end markers around random bytes (incompressible,
        # as JPEG data is); fv-bench appends each request's id, so no two are the same file.
        local photo="$DIR/1700000000000.jpg"
        { printf '\377\330\377\340'; head -c $((PHOTO_KB * 1024 - 6)) /dev/urandom; printf '\377\331'; } >"$photo"
        printf '<data id="binaryType"><meta><instanceID>uuid:{{uuid}}</instanceID></meta><file1>%s</file1></data>' \
            "$(basename "$photo")" >"$2"
        echo "$FIX/forms/binaryType.xml $photo"
        ;;
    esac
}

run_case() { # CASE ROUND
    local name=$1 round=$2
    start_cluster
    KEY=$(cat "$DIR/admin.key")
    local tmpl="$DIR/instance.xml" form attach
    read -r form attach < <(prepare_case "$name" "$tmpl")
    local org survey dep cred me
    org=$(api POST /v1/orgs '{"name":"bench"}' | field id)
    /usr/bin/python3 -c 'import json,sys; print(json.dumps({"org_id": sys.argv[1], "name": "bench " + sys.argv[2], "xform": open(sys.argv[3], encoding="utf-8").read()}))' \
        "$org" "$name" "$form" >"$DIR/survey.json"
    survey=$(api POST /v1/surveys "$DIR/survey.json" | field id)
    if [ "$AUTH" = token ]; then
        me=$(api GET /v1/me | field id)
        dep=$(api POST "/v1/surveys/$survey/deployments" '{"name":"bench","roles":{"enumerators":[{"type":"user","id":"'"$me"'"}]}}' | field id)
        cred=$(api POST "/v1/deployments/$dep/app-users" '{"name":"bench tablet"}' | field token)
    else
        local mail=collector@example.org uid
        curl -fsS --cacert "$DIR/tls/cert.pem" -H "Content-Type: application/json" "https://127.0.0.1:$PORT/v1/users" \
            -d '{"email":"'"$mail"'","name":"Collector","password":"'"$PASSWORD"'"}' >/dev/null
        uid=$(psql "$PGURL" -Atc "SELECT id FROM users WHERE lower(email) = '$mail'")
        psql "$PGURL" -q -v ON_ERROR_STOP=1 -c "INSERT INTO teams (id, org_id, name) VALUES (gen_random_uuid(), '$org', 'bench')" \
            -c "INSERT INTO memberships (id, org_id, user_id, role, team_id) SELECT gen_random_uuid(), '$org', '$uid', 'member', id FROM teams WHERE org_id = '$org'"
        dep=$(api POST "/v1/surveys/$survey/deployments" '{"name":"bench","roles":{"enumerators":[{"type":"user","id":"'"$uid"'"}]}}' | field id)
        cred="$mail:$PASSWORD"
    fi

    local log="$DIR/bench.out" cpu0 cpu1 rc=0
    cpu0=$(cpu_sample)
    FV_BENCH_KEY=$cred "$BUILD/fv-bench" --url "https://127.0.0.1:$PORT" --cacert "$DIR/tls/cert.pem" \
        --deployment "$dep" --pg "$PGURL" --openrosa "$tmpl" ${attach:+--attach "$attach"} --auth "$AUTH" \
        --json "${args[@]}" >"$log" 2>"$DIR/bench.err" || rc=$?
    cpu1=$(cpu_sample)
    local mem
    mem=$(cluster_pids | while read -r kind pid; do
        [ "$kind" = postgres ] && continue
        echo "$kind $pid $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    done)

    echo "== $name, round $round ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg), auth $AUTH)"
    grep -v '^{' "$log" || true
    [ "$rc" -eq 0 ] || { echo "  fv-bench exit status $rc; its first messages:"; head -3 "$DIR/bench.err"; }
    local json
    json=$(tail -1 "$log")
    if [ "${json:0:1}" != "{" ]; then
        stop_cluster
        return 1
    fi
    /usr/bin/python3 - "$json" "$cpu0" "$cpu1" "$mem" "$name" "$round" <<'EOF'
import json, os, sys
r = json.loads(sys.argv[1])
tick = os.sysconf("SC_CLK_TCK")
def parse(text):
    out = {}
    for line in text.splitlines():
        k, p, v = line.split()
        out[(k, p)] = int(v)
    return out
c0, c1, mem = parse(sys.argv[2]), parse(sys.argv[3]), parse(sys.argv[4])
acc = max(r["accepted"], 1)
cpu = {}
for (k, p), v in c1.items():
    cpu[k] = cpu.get(k, 0) + v - c0.get((k, p), 0)
print("  CPU us/submission   " + "  ".join(f"{k} {v * 1e6 / tick / acc:.0f}" for k, v in sorted(cpu.items())))
peak = {}
for (k, p), v in mem.items():
    peak.setdefault(k, []).append(v)
print("  peak RSS (VmHWM)    " + "  ".join(f"{k} {max(v) / 1024:.1f} MiB" + (f" (x{len(v)}, sum {sum(v) / 1024:.1f})" if len(v) > 1 else "")
                                     for k, v in sorted(peak.items())))
e2e = r["e2e"] or {}
def top(k):
    return round(max(peak.get(k, [0])) / 1024, 1)
print("SUMMARY " + json.dumps({"case": sys.argv[5], "round": int(sys.argv[6]), "accepted_per_s": r["accepted_per_s"],
      "committed_per_s": e2e.get("e2e_per_s"), "p50": r["latency_ms"]["p50"], "p90": r["latency_ms"]["p90"],
      "p99": r["latency_ms"]["p99"], "max": r["latency_ms"]["max"], "accepted": r["accepted"], "stored_201": r["stored_201"],
      "queued_202": r["queued_202"], "errors": r["non_202"] + r["bad_ack"] + r["no_response"] + r["connection_errors"],
      "committed": e2e.get("stored"), "request_bytes": r["request_bytes"], "frontend_child_peak_mib": top("frontend-child"),
      "frontend_master_peak_mib": top("frontend-master"), "worker_peak_mib": top("worker"), "redis_peak_mib": top("redis"),
      "cpu_us": {k: round(v * 1e6 / tick / acc) for k, v in cpu.items()}}))
EOF
    if [ -n "${FV_BENCH_AFTER:-}" ]; then
        BENCH_PGURL=$PGURL BENCH_DEPLOYMENT=$dep BENCH_SURVEY=$survey BENCH_DIR=$DIR bash -c "$FV_BENCH_AFTER" || true
    fi
    if [ -n "$OUT" ]; then
        cp "$log" "$OUT/$name-$round.out"
        cp "$DIR/bench.err" "$OUT/$name-$round.err"
    fi
    stop_cluster
    return "$rc"
}

echo "openrosa.sh: $(nproc) cores, fv-bench ${args[*]}, cases ${cases[*]}, $ROUNDS round(s), auth $AUTH"
status=0
for round in $(seq "$ROUNDS"); do
    for c in "${cases[@]}"; do
        run_case "$c" "$round" || status=1
    done
done
exit "$status"
