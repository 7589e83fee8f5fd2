#!/usr/bin/env bash
# Installs the Debian 12 packages Fieldvault needs to build and run (and, with --test, to test),
# installing only what is missing. Used by tests/run.sh and deploy/local.sh.
#
#   deploy/install-deps.sh [--test]
#
# Runs apt-get through sudo when not root. `apt-get update` runs only when something is missing.
set -euo pipefail

want_test=0
for arg in "$@"; do
    case "$arg" in
    --test) want_test=1 ;;
    -h | --help)
        sed -n '2,7p' "$0"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option: $arg" >&2
        exit 2
        ;;
    esac
done

# Build and runtime: compilers, libraries, and the servers a local cluster runs.
packages=(build-essential cmake pkg-config libevent-dev libpq-dev libhiredis-dev libssl-dev
    libyajl-dev uuid-dev liboath-dev libzxcvbn-dev libpcre2-dev libexpat1-dev libarchive-dev zlib1g-dev libcmocka-dev postgresql-15 redis-server redis-tools openssl curl
    ca-certificates util-linux jq dpkg-dev)
# dpkg-dev: dpkg-shlibdeps, which computes the .deb's Depends (cpack -G DEB; build-essential
# pulls it in too, named here because the package step needs it).
if [ "$want_test" = 1 ]; then
    # clang-format-14: the pinned formatter of tools/format.sh (Debian 12's version);
    # jsonschema, yaml: the live check of every answer against docs/openapi.yaml;
    # testssl.sh: tests/integration/test_tls.py scans a front end with it;
    # clang-14, libclang-rt-14-dev: libFuzzer and the sanitizer runtimes of tests/fuzz/;
    # python3-cryptography: the ODK-format test client of tests/integration/test_odk_encryption.py;
    # libreoffice-calc-nogui: test_exports.py opens the export's CSV with headless LibreOffice
    # Calc (soffice --convert-to; without it that test is skipped and the promise unproven);
    # python3-pytest-xdist: tests/run.sh runs the integration tests in two processes.
    packages+=(python3 python3-pytest python3-pytest-xdist python3-requests python3-psycopg2 python3-jsonschema python3-yaml
        clang-format-14 testssl.sh clang-14 libclang-rt-14-dev python3-cryptography libreoffice-calc-nogui
        chromium nodejs)
    # chromium, nodejs, npm: tests/integration/test_browser_webforms.py runs ODK Web Forms in
    # Debian's headless Chromium through playwright-core (tests/browser/, npm ci from its lockfile;
    # no browser is downloaded). npm only when no npm is on PATH: a nodejs package from another
    # archive (NodeSource's) carries its own npm and conflicts with Debian's.
    if ! command -v npm >/dev/null 2>&1; then
        packages+=(npm)
    fi
fi

missing=()
for p in "${packages[@]}"; do
    # dpkg-query prints the status; only "install ok installed" counts as present.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: all ${#packages[@]} packages present"
    exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "install-deps.sh: not root and no sudo; install these as root: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
# The postgresql package starts a system cluster on 5432 where systemd runs; ours run on their
# own ports from their own data directories, so it does not matter whether that one is up.
