#!/usr/bin/env bash
# The test command: installs what is missing (apt), builds, runs the unit tests (ctest) and the
# integration tests (pytest against real PostgreSQL, Redis and our binaries), the Debian package
# (cpack, unpacked, its programs run: tests/package), the short fault scenarios (tests/chaos/
# chaos.py: the whole cluster under load, things broken on purpose, every acknowledged submission
# checked), then the unit and integration tests again with AddressSanitizer + UndefinedBehavior-
# Sanitizer. The format check (tools/format.sh --check) runs first and counts as one test. The
# fuzz smoke (tests/fuzz/run.sh: every libFuzzer target briefly, clang, build-fuzz/) runs after
# the chaos step; each target counts as one test. Before the build, tests/browser/ensure.sh installs
# the browser test's npm packages (npm ci from tests/browser/package-lock.json) when they changed.
#
#   tests/run.sh [--quick] [--no-chaos] [--no-package] [--no-format] [--no-fuzz] [--only STEP]
#                [--no-install] [--keep-tmp] [-- PYTEST-ARGS...]
#
#   --quick       skip the sanitizer pass (build-asan/)
#   --no-chaos    skip the fault scenarios
#   --no-package  skip the package step
#   --no-format   skip the format check
#   --no-fuzz     skip the fuzz smoke (FV_FUZZ_SMOKE_SECONDS per target, default 12)
#   --only STEP   run one step alone: format, fuzz, or package (configures and builds build/ first)
#   --no-install  do not check or install Debian packages
#   --keep-tmp    keep the integration tests' temporary directories (FV_KEEP_TMP=1)
#   -- ARGS       extra arguments for pytest, e.g. -- -k flow -x
#
# FV_TEST_WORKERS (default 2) is how many processes run the integration tests (pytest-xdist,
# each with its own cluster); 1 runs them in one. Each step's seconds are in the summary.
# Exits non-zero if any step fails; the last line is the summary of all test counts.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

quick=0
chaos=1
package=1
format=1
fuzz=1
only=""
install=1
pytest_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --no-chaos) chaos=0 ;;
    --no-package) package=0 ;;
    --no-format) format=0 ;;
    --no-fuzz) fuzz=0 ;;
    --only)
        shift
        case "${1:-}" in
        format | fuzz | package) only=$1 ;;
        *)
            echo "run.sh: --only takes format, fuzz or package" >&2
            exit 2
            ;;
        esac
        ;;
    --no-install) install=0 ;;
    --keep-tmp) export FV_KEEP_TMP=1 ;;
    --)
        shift
        pytest_extra=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,27p' "$0"
        exit 0
        ;;
    *)
        echo "run.sh: unknown option: $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

# Debian's interpreter: the python3 first on PATH may be a separate build without Debian's
# modules (pytest, requests, psycopg2 come from apt).
PY=/usr/bin/python3
JOBS=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

# The integration tests run in FV_TEST_WORKERS processes (default 2; pytest-xdist, python3-
# pytest-xdist from install-deps.sh --test): each process starts its own cluster (PostgreSQL,
# Redis, front end, workers) in its own directory on its own ports, and takes whole modules
# (--dist loadfile: a module's tests run in order, in one process, with its module fixtures).
# Most of a test's time is spent waiting (on a server, a poll, a lease, a sleep of the fault
# tests), so two processes on two cores took the release pass from 476 s to 298 s and the
# sanitizer pass from 998 s to 668 s (conftest.py reports each process's harness findings).
# FV_TEST_WORKERS=1 (or no xdist) runs them in one process, as before.
pytest_workers() {
    local n=${FV_TEST_WORKERS:-2}
    if [ "$n" -gt 1 ] 2>/dev/null && "$PY" -c "import xdist" 2>/dev/null; then
        echo "-n $n --dist loadfile"
    fi
}

passed=0
failed=0
skipped=0
steps=()
status=0

# A note "== ..." starts a step: the step's line in the summary says how long it took since.
step_start=$start
note() {
    case "$1" in "== "*) step_start=$(date +%s) ;; esac
    echo "run.sh: $*"
}
step_secs() { echo "$(($(date +%s) - step_start))s"; }
step_ok() { steps+=("ok      $1 ($(step_secs))"); }
step_failed() {
    steps+=("FAILED  $1 ($(step_secs))")
    status=1
}
# A step that is not itself a test (dependencies, configure, build) counts as one failure.
setup_failed() {
    step_failed "$1"
    failed=$((failed + 1))
}

# Adds the counts of a JUnit XML file (ctest's or pytest's) to the totals.
count_junit() {
    local file=$1 counts
    [ -f "$file" ] || return 0
    counts=$("$PY" - "$file" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
    s += int(su.get("skipped", 0)) + int(su.get("disabled", 0))
print(max(t - f - s, 0), f, s)
EOF
    ) || return 0
    read -r p f s <<<"$counts"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
}

summary() {
    local elapsed=$(($(date +%s) - start))
    echo
    echo "run.sh: ---------------------------------------------------------------"
    for s in "${steps[@]}"; do
        echo "run.sh: $s"
    done
    echo "run.sh: took ${elapsed}s"
    echo "summary: ${passed} passed, ${failed} failed, ${skipped} skipped"
}

# Configure and build. $1 = label, $2 = build dir, rest = cmake options.
build_pass() {
    local label=$1 dir=$2
    shift 2
    note "== ${label}: configure and build ${dir}/"
    if ! cmake -S "$ROOT" -B "$ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"; then
        setup_failed "${label}: cmake configure"
        return 1
    fi
    if ! cmake --build "$ROOT/$dir" -j"$JOBS"; then
        setup_failed "${label}: build"
        return 1
    fi
    step_ok "${label}: build"
}

# One pass: configure, build, ctest, pytest. $1 = label, $2 = build dir, rest = cmake options.
run_pass() {
    local label=$1 dir=$2
    build_pass "$@" || return 1

    note "== ${label}: unit tests (ctest)"
    rm -f "$ROOT/$dir/ctest-junit.xml"
    local before_unit=$failed
    if (cd "$ROOT/$dir" && ctest --output-on-failure -j"$JOBS" --timeout 300 \
        --output-junit "$ROOT/$dir/ctest-junit.xml"); then
        count_junit "$ROOT/$dir/ctest-junit.xml"
        step_ok "${label}: unit tests"
    else
        count_junit "$ROOT/$dir/ctest-junit.xml"
        step_failed "${label}: unit tests"
        [ "$failed" -gt "$before_unit" ] || failed=$((failed + 1))
    fi

    note "== ${label}: integration tests (pytest, FV_BUILD_DIR=${dir})"
    rm -f "$ROOT/$dir/pytest-junit.xml"
    local before=$failed rc=0 workers
    read -r -a workers <<<"$(pytest_workers)"
    [ ${#workers[@]} -gt 0 ] || note "integration tests in one process (FV_TEST_WORKERS=${FV_TEST_WORKERS:-2}, pytest-xdist $("$PY" -c 'import xdist' 2>/dev/null && echo present || echo missing))"
    FV_BUILD_DIR="$ROOT/$dir" "$PY" -m pytest tests/integration -v -p no:cacheprovider "${workers[@]}" \
        --junitxml="$ROOT/$dir/pytest-junit.xml" "${pytest_extra[@]}" || rc=$?
    count_junit "$ROOT/$dir/pytest-junit.xml"
    if [ "$rc" = 0 ]; then
        step_ok "${label}: integration tests"
    else
        step_failed "${label}: integration tests (pytest exit $rc)"
        # Failed without a failing test (harness findings such as a sanitizer report at
        # shutdown, or a collection error): still one failure in the count.
        [ "$failed" -gt "$before" ] || failed=$((failed + 1))
    fi
    return 0
}

# The format check: one test, failed when a file differs from what clang-format-14 makes of it.
run_format() {
    note "== format: tools/format.sh --check"
    if tools/format.sh --check; then
        passed=$((passed + 1))
        step_ok "format check"
    else
        failed=$((failed + 1))
        step_failed "format check (tools/format.sh lists the files; run it without --check)"
    fi
}

# The package step: cpack -G DEB in the build dir, then tests/package (pytest) unpacks it with
# dpkg -x and runs the installed fvctl and fv-frontend against a throwaway PostgreSQL.
run_package() {
    local dir=$1 rc=0
    note "== package: cpack -G DEB in ${dir}/, tests/package on the unpacked tree"
    rm -f "$ROOT/$dir"/fieldvault_*.deb "$ROOT/$dir/package-junit.xml"
    if ! (cd "$ROOT/$dir" && cpack -G DEB); then
        setup_failed "package: cpack -G DEB"
        return 1
    fi
    local before=$failed
    FV_BUILD_DIR="$ROOT/$dir" "$PY" -m pytest tests/package -v -p no:cacheprovider \
        --junitxml="$ROOT/$dir/package-junit.xml" || rc=$?
    count_junit "$ROOT/$dir/package-junit.xml"
    if [ "$rc" = 0 ]; then
        step_ok "package: .deb built and its installed programs work"
    else
        step_failed "package (pytest exit $rc)"
        [ "$failed" -gt "$before" ] || failed=$((failed + 1))
    fi
}

# The fault tests (tests/chaos/chaos.py): each scenario is one test; a line
# "scenario=NAME acked=N stored=N lost=0 duplicates=0 ..." per scenario.
run_chaos() {
    local dir=$1 out rc=0
    note "== chaos: fault scenarios under load (FV_BUILD_DIR=${dir})"
    out=$(mktemp)
    FV_BUILD_DIR="$ROOT/$dir" "$PY" tests/chaos/chaos.py 2>&1 | tee "$out" || rc=$?
    local ok bad
    ok=$(grep -cE '^scenario=.* lost=0 duplicates=0' "$out" || true)
    bad=$(grep -E '^scenario=' "$out" | grep -cvE ' lost=0 duplicates=0' || true)
    rm -f "$out"
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$rc" = 0 ]; then
        step_ok "chaos: ${ok} fault scenarios, nothing lost"
    else
        step_failed "chaos (exit $rc)"
        [ "$bad" -gt 0 ] || failed=$((failed + 1))
    fi
}

# The fuzz smoke (tests/fuzz/run.sh): every libFuzzer target for a few seconds from its seeds
# (the regression inputs among them), in build-fuzz/ with clang. One test per target; a target
# that crashes, leaks or hangs fails, its input saved under tests/fuzz/crashes/.
run_fuzz() {
    local secs=${FV_FUZZ_SMOKE_SECONDS:-12} rc=0
    note "== fuzz: each libFuzzer target for ${secs}s (tests/fuzz/run.sh, build-fuzz/)"
    rm -f "$ROOT/build-fuzz/fuzz-junit.xml"
    local before=$failed
    mkdir -p "$ROOT/build-fuzz"
    FV_FUZZ_PARALLEL=${FV_FUZZ_PARALLEL:-$JOBS} tests/fuzz/run.sh --junit "$ROOT/build-fuzz/fuzz-junit.xml" "$secs" || rc=$?
    if [ "$rc" = 2 ] || [ ! -f "$ROOT/build-fuzz/fuzz-junit.xml" ]; then
        setup_failed "fuzz: build (tests/fuzz/run.sh exit $rc)"
        return 1
    fi
    count_junit "$ROOT/build-fuzz/fuzz-junit.xml"
    if [ "$rc" = 0 ]; then
        step_ok "fuzz: every target ${secs}s without a crash"
    else
        step_failed "fuzz (crashes under tests/fuzz/crashes/)"
        [ "$failed" -gt "$before" ] || failed=$((failed + 1))
    fi
}

if [ "$install" = 1 ]; then
    note "== dependencies"
    if deploy/install-deps.sh --test; then
        step_ok "dependencies"
    else
        setup_failed "dependencies (deploy/install-deps.sh --test)"
        summary
        exit 1
    fi
fi

# The browser test's npm packages (tests/browser/ensure.sh: npm ci from the lockfile into
# tests/browser/node_modules, only when that lockfile changed since the last install). Without
# node and npm (install-deps.sh --test installs them) test_browser_webforms.py is skipped.
browser_deps() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        steps+=("skipped browser packages (no node/npm: test_browser_webforms.py skips)")
        return 0
    fi
    note "== browser packages: tests/browser/ensure.sh (npm ci when the lockfile changed)"
    if tests/browser/ensure.sh; then
        step_ok "browser packages"
    else
        setup_failed "browser packages (tests/browser/ensure.sh)"
    fi
}

# Sanitizer reports abort the program (a crash the tests see) and LeakSanitizer runs at exit;
# the integration harness also scans every program's log for reports and fails the run.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

export ASAN_OPTIONS=abort_on_error=1
if [ "$only" = format ]; then
    run_format
    summary
    exit "$status"
elif [ "$only" = fuzz ]; then
    run_fuzz
    summary
    exit "$status"
elif [ "$only" = package ]; then
    build_pass "release" build && run_package build
    summary
    exit "$status"
fi

browser_deps
if [ "$format" = 1 ]; then
    run_format
else
    steps+=("skipped format check (--no-format)")
fi
if run_pass "release" build; then
    if [ "$package" = 1 ]; then
        run_package build
    else
        steps+=("skipped package (--no-package)")
    fi
    if [ "$chaos" = 1 ]; then
        run_chaos build
    else
        steps+=("skipped chaos (--no-chaos)")
    fi
    if [ "$fuzz" = 1 ]; then
        run_fuzz
    else
        steps+=("skipped fuzz (--no-fuzz)")
    fi
    if [ "$quick" = 0 ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
        run_pass "sanitizers" build-asan -DFV_SANITIZE=ON || true
    else
        steps+=("skipped sanitizers (--quick)")
    fi
fi

summary
exit "$status"
