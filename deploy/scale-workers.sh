#!/usr/bin/env bash
# Scales the fv-worker@ instances of this host to exactly N: fv-worker@1 .. fv-worker@N started
# and enabled (so they come back after a reboot), every higher-numbered instance stopped and
# disabled. Idempotent: running it twice with the same N changes nothing the second time.
#
#   deploy/scale-workers.sh [--dry-run] N
#
#   --dry-run   print the systemctl commands that would change something, run none of them
#               (the read-only queries still run)
#   N           0..256; 0 stops every worker on this host
#
# SYSTEMCTL overrides the systemctl binary (the tests use a fake one). Instances whose name is
# not a number (fv-worker@foo) are left alone and reported. Workers started first, stopped last,
# so that scaling never dips below the smaller of the two counts. Stopping a worker loses
# nothing: what it held unacknowledged is taken over by the others (docs/operations.md).
set -euo pipefail

SYSTEMCTL=${SYSTEMCTL:-systemctl}
MAX=256
prog=scale-workers.sh

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit "${2:-1}"
}

dry=0
n=""
for arg in "$@"; do
    case "$arg" in
    --dry-run) dry=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        printf '%s: unknown option: %s\n' "$prog" "$arg" >&2
        exit 2
        ;;
    *)
        [ -z "$n" ] || {
            printf '%s: one N only (got %s and %s)\n' "$prog" "$n" "$arg" >&2
            exit 2
        }
        n=$arg
        ;;
    esac
done
if ! [[ "$n" =~ ^(0|[1-9][0-9]{0,2})$ ]] || [ "$n" -gt "$MAX" ]; then
    printf '%s: N must be a whole number from 0 to %d (got "%s")\n' "$prog" "$MAX" "$n" >&2
    usage >&2
    exit 2
fi

changes=0
# Runs (or, with --dry-run, prints) one systemctl command that changes something.
act() {
    changes=$((changes + 1))
    if [ "$dry" = 1 ]; then
        printf 'would run: %s %s\n' "$SYSTEMCTL" "$*"
        return 0
    fi
    printf '%s: %s %s\n' "$prog" "$SYSTEMCTL" "$*"
    "$SYSTEMCTL" "$@" || die "'$SYSTEMCTL $*' failed"
}

# The fv-worker@ instances systemd knows (loaded: running, failed, or stopped but still loaded),
# as "K ACTIVE" lines.
declare -A active=()
listing=$("$SYSTEMCTL" list-units --type=service --all --no-legend --plain 'fv-worker@*.service') ||
    die "'$SYSTEMCTL list-units' failed"
while read -r unit _load state _rest; do
    [ -n "${unit:-}" ] || continue
    inst=${unit#fv-worker@}
    inst=${inst%.service}
    if ! [[ "$inst" =~ ^[1-9][0-9]*$ ]]; then
        printf '%s: leaving %s alone (not a numbered instance)\n' "$prog" "$unit" >&2
        continue
    fi
    active[$inst]=$state
done <<<"$listing"

running_before=0
for k in "${!active[@]}"; do
    case "${active[$k]}" in active | activating | reloading) running_before=$((running_before + 1)) ;; esac
done

is_enabled() {
    # Prints enabled, disabled, static, ...; exit status 0 only for enabled states.
    local s
    s=$("$SYSTEMCTL" is-enabled "fv-worker@$1.service" 2>/dev/null) || true
    [ "$s" = enabled ] || [ "$s" = enabled-runtime ]
}

# Up: 1..N enabled and running.
for ((k = 1; k <= n; k++)); do
    unit="fv-worker@$k.service"
    is_enabled "$k" || act enable "$unit"
    case "${active[$k]:-inactive}" in
    active | activating | reloading) ;;
    *) act start "$unit" ;;
    esac
done

# Down: every numbered instance above N stopped and disabled. Besides the loaded ones, look at
# the next few numbers too, for instances left enabled but not loaded.
highest=$n
for k in "${!active[@]}"; do [ "$k" -gt "$highest" ] && highest=$k; done
for ((k = n + 1; k <= highest + 4 && k <= MAX; k++)); do
    unit="fv-worker@$k.service"
    case "${active[$k]:-inactive}" in
    inactive | failed) ;;
    *) act stop "$unit" ;;
    esac
    if is_enabled "$k"; then act disable "$unit"; fi
done

if [ "$changes" = 0 ]; then
    printf '%s: nothing to do: %d fv-worker instance(s) running and enabled\n' "$prog" "$n"
elif [ "$dry" = 1 ]; then
    printf '%s: dry run: %d change(s) to go from %d running to %d\n' "$prog" "$changes" \
        "$running_before" "$n"
else
    printf '%s: done: %d fv-worker instance(s) running on this host (were %d)\n' "$prog" "$n" \
        "$running_before"
fi
