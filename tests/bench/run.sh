#!/usr/bin/env bash
# Benchmark on this machine, everything co-located: starts a throwaway local cluster with
# deploy/local.sh (PostgreSQL, Redis with appendfsync always, fv-balancer in front of two fv-frontend
# instances, two fv-workers),
# creates an org, a survey and a deployment, runs fv-bench against it with the given options,
# then stops the cluster and removes it.
#
#   tests/bench/run.sh [fv-bench options]     e.g. --connections 32 --requests 50000
#
# Defaults: --connections 32 --requests 50000, with --pg so the end-to-end rate (until every
# accepted submission is in PostgreSQL) is reported. FV_BUILD_DIR picks the build (default build/).
# FV_BENCH_RATE_LIMIT sets the per-key rate limit per 60 s window (default 0: off, since one key
# drives the whole load); a huge value measures what counting every request in Redis costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${FV_BUILD_DIR:-build}
PORT=${FV_BENCH_PORT:-18443}
PG_PORT=${FV_BENCH_PG_PORT:-15432}
REDIS_PORT=${FV_BENCH_REDIS_PORT:-16379}
DIR=$(mktemp -d /tmp/fv-bench.XXXXXX)
chmod 755 "$DIR"
CLUSTER_PID=

cleanup() {
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM "$CLUSTER_PID"
        wait "$CLUSTER_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

FV_LOCAL_DIR="$DIR" FV_PORT=$PORT FV_PG_PORT=$PG_PORT FV_REDIS_PORT=$REDIS_PORT \
    FV_API_KEY_RATE_LIMIT=${FV_BENCH_RATE_LIMIT:-0} FV_API_KEY_RATE_WINDOW_S=60 \
    deploy/local.sh --no-install >"$DIR.log" 2>&1 &
CLUSTER_PID=$!
for _ in $(seq 1200); do
    [ -s "$DIR/admin.key" ] && curl -fsS --cacert "$DIR/tls/cert.pem" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$CLUSTER_PID" 2>/dev/null || { cat "$DIR.log"; echo "bench: the cluster did not start" >&2; exit 1; }
    sleep 0.1
done
rm -f "$DIR.log"
KEY=$(cat "$DIR/admin.key")
api() { # METHOD PATH [BODY] -> prints the JSON reply
    curl -fsS --cacert "$DIR/tls/cert.pem" -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
        -X "$1" "https://127.0.0.1:$PORT$2" ${3:+-d "$3"}
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
ORG=$(api POST /v1/orgs '{"name":"bench"}' | field id)
SURVEY=$(api POST /v1/surveys '{"org_id":"'"$ORG"'","name":"bench","definition":{"questions":[
  {"name":"name","type":"text","required":true},{"name":"age","type":"integer","constraint":{"min":0,"max":150}}]}}' | field id)
ME=$(api GET /v1/me | field id)
DEP=$(api POST "/v1/surveys/$SURVEY/deployments" '{"name":"bench","roles":{"enumerators":[{"type":"user","id":"'"$ME"'"}]}}' | field id)

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--connections 32 --requests 50000)
echo "bench: $(nproc) cores, cluster on 127.0.0.1:$PORT (fv-balancer, 2 front ends of one child, 2 workers)"
PGURL="host=127.0.0.1 port=$PG_PORT dbname=fieldvault user=fieldvault"
lsn() { psql "$PGURL" -Atc "SELECT pg_current_wal_lsn()"; }
LSN0=$(lsn)
FV_BENCH_KEY=$KEY "$BUILD/fv-bench" --url "https://127.0.0.1:$PORT" --cacert "$DIR/tls/cert.pem" \
    --deployment "$DEP" --pg "$PGURL" "${args[@]}"
# PostgreSQL's write-ahead log per stored submission (every response's bytes reach the disk
# through it: what the history rows and indexes cost the submission path).
psql "$PGURL" -Atc "SELECT '  WAL bytes/response  ' || round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN0') / greatest(count(*), 1)) FROM responses"
