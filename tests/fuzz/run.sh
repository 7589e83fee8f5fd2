#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_<name>.c, clang-14, ASan + UBSan) in build-fuzz/
# and runs each for SECONDS, one after the other (one fuzzer process at a time, nice -n 10: the
# machine is shared), or FV_FUZZ_PARALLEL at a time (tests/run.sh: one per core).
#
#   tests/fuzz/run.sh [--no-build] [--junit FILE] SECONDS [TARGET...]
#
#   SECONDS       how long each target runs (libFuzzer -max_total_time)
#   TARGET...     some of: submit form envelope spool config lbcheck check token routes page secrets xform odkcrypt
#                 multipart
#                 (default: all)
#   --no-build    use the binaries already in build-fuzz/fuzz/
#   --junit FILE  also write the results as JUnit XML (one test per target; tests/run.sh)
#
# Each target starts from its seeds, tests/fuzz/corpus/<name>/ (read only: every seed, the
# regression inputs among them, is run first), and keeps what it finds in
# build-fuzz/corpus/<name>/ for the next run. A crash, a sanitizer report, a leak, an input
# slower than 10 s (-timeout) or more than 2 GB of memory (-rss_limit_mb) fails the target: the
# input is saved as tests/fuzz/crashes/<name>-crash-<sha1> (or -timeout-, -oom-, -leak-) and
# the run exits 1. Replay one: build-fuzz/fuzz/fuzz_<name> tests/fuzz/crashes/<file>.
# The last lines give, per target, the executions and the result.
#
# Environment: FV_FUZZ_BUILD_DIR (default build-fuzz), FV_FUZZ_JOBS (build jobs, default 2),
# FV_FUZZ_ARGS (extra libFuzzer flags, e.g. "-max_len=65536"), FV_FUZZ_PARALLEL (targets run at
# the same time, default 1).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
ALL=(submit form envelope spool config lbcheck check token routes page secrets xform odkcrypt multipart)
BUILD=${FV_FUZZ_BUILD_DIR:-build-fuzz}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

build=1
junit=""
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) build=0 ;;
    --junit)
        shift
        junit=${1:-}
        ;;
    -h | --help)
        sed -n '2,25p' "$0"
        exit 0
        ;;
    -*)
        echo "fuzz/run.sh: unknown option: $1 (see --help)" >&2
        exit 2
        ;;
    *) break ;;
    esac
    shift
done
seconds=${1:-}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: tests/fuzz/run.sh [--no-build] [--junit FILE] SECONDS [TARGET...]" >&2
    exit 2
fi
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL[*]} " == *" $t "* ]] || {
        echo "fuzz/run.sh: unknown target '$t' (one of: ${ALL[*]})" >&2
        exit 2
    }
done

if [ "$build" = 1 ]; then
    echo "fuzz/run.sh: building the targets in ${BUILD#"$ROOT"/}/"
    mkdir -p "$BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DFV_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DBUILD_TESTING=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 || {
        cat "$BUILD/configure.log" >&2
        echo "fuzz/run.sh: cmake configure failed" >&2
        exit 2
    }
    nice -n 10 cmake --build "$BUILD" --target fuzz -j"${FV_FUZZ_JOBS:-2}" || {
        echo "fuzz/run.sh: build failed" >&2
        exit 2
    }
fi

# The longest input per target: room for what each parser is given in production without
# spending the time on sizes that only repeat (bodies are larger, a token is at most 400 bytes).
max_len() {
    case "$1" in
    submit | form | xform | odkcrypt) echo 16384 ;;
    lbcheck) echo 17000 ;; # just past the checker's 16 KiB limit
    config | spool | envelope) echo 8192 ;;
    *) echo 1024 ;;
    esac
}

mkdir -p "$ROOT/tests/fuzz/crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
    [ -x "$BUILD/fuzz/fuzz_$t" ] || {
        echo "fuzz/run.sh: $BUILD/fuzz/fuzz_$t is missing (build first, or drop --no-build)" >&2
        exit 2
    }
done

# One target: its fuzzer for SECONDS; its exit status and seconds taken go to fuzz-<t>.rc.
run_target() {
    local t=$1 bin="$BUILD/fuzz/fuzz_$1" work="$BUILD/corpus/$1" log="$BUILD/fuzz-$1.log" dict=() start rc
    mkdir -p "$work"
    case "$t" in
    submit | form) dict=(-dict="$ROOT/tests/fuzz/dict/json.dict") ;;
    *) [ -f "$ROOT/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/dict/$t.dict") ;;
    esac
    start=$(date +%s)
    # shellcheck disable=SC2086 # FV_FUZZ_ARGS is a list of flags
    nice -n 10 "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$ROOT/tests/fuzz/crashes/$t-" "${dict[@]}" ${FV_FUZZ_ARGS:-} \
        "$work" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    echo "$rc $(($(date +%s) - start))" >"$BUILD/fuzz-$t.rc"
}

# FV_FUZZ_PARALLEL targets at a time (default 1: the machine may be shared; tests/run.sh runs
# as many as there are cores, each target still gets its SECONDS on a core of its own).
parallel=${FV_FUZZ_PARALLEL:-1}
[[ "$parallel" =~ ^[1-9][0-9]*$ ]] || parallel=1
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
    rm -f "$BUILD/fuzz-$t.rc"
    echo "fuzz/run.sh: == $t for ${seconds}s (log: ${BUILD#"$ROOT"/}/fuzz-$t.log)"
    run_target "$t" &
done
wait

results=()
status=0
xml_cases=""
for t in "${targets[@]}"; do
    log="$BUILD/fuzz-$t.log"
    rc=2 took=0
    [ -f "$BUILD/fuzz-$t.rc" ] && read -r rc took <"$BUILD/fuzz-$t.rc"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    execs=${execs:-0}
    if [ "$rc" = 0 ]; then
        results+=("$(printf '%-9s %12s executions  %4ss  ok' "$t" "$execs" "$took")")
        xml_cases+="<testcase classname=\"fuzz\" name=\"$t\" time=\"$took\"/>"
    else
        status=1
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        why=$(grep -a -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|==[0-9]+== ERROR)' "$log" || true)
        echo "fuzz/run.sh: $t FAILED (exit $rc): ${why:-see the log}" >&2
        tail -n 40 "$log" >&2
        [ -n "$crash" ] && echo "fuzz/run.sh: input saved as ${crash#"$ROOT"/}" >&2
        results+=("$(printf '%-9s %12s executions  %4ss  FAILED (exit %s) %s' "$t" "$execs" "$took" "$rc" \
            "${crash#"$ROOT"/}")")
        msg=$(printf '%s' "${why:-exit $rc}" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/"/\&quot;/g')
        xml_cases+="<testcase classname=\"fuzz\" name=\"$t\" time=\"$took\"><failure message=\"$msg\"/></testcase>"
    fi
done

echo
echo "fuzz/run.sh: ---------------------------------------------------------------"
for r in "${results[@]}"; do echo "fuzz/run.sh: $r"; done
if [ -n "$junit" ]; then
    nfail=$(printf '%s\n' "${results[@]}" | grep -c FAILED || true)
    printf '<?xml version="1.0"?>\n<testsuite name="fuzz" tests="%d" failures="%d">%s</testsuite>\n' \
        "${#targets[@]}" "$nfail" "$xml_cases" >"$junit"
fi
exit "$status"
