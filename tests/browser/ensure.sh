#!/usr/bin/env bash
# Installs tests/browser's npm packages (npm ci from package-lock.json, scripts off: esbuild's
# binary comes as its @esbuild/linux-x64 package) into tests/browser/node_modules, only when they
# are missing or the lockfile changed since the last install. Used by tests/run.sh and by
# tests/integration/test_browser_webforms.py. No browser is downloaded: the test runs Debian's
# /usr/bin/chromium (apt package chromium, deploy/install-deps.sh --test).
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.fv-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
