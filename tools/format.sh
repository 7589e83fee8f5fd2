#!/usr/bin/env bash
# Formats the C sources with the pinned formatter: clang-format 14 (Debian 12's clang-format-14)
# and the repository's .clang-format. Another version formats differently, so it refuses one.
#
#   tools/format.sh [--check] [FILE...]
#
#   --check   change nothing; list the files whose formatting differs and exit 1 (CI)
#   FILE...   only these files (default: every .c and .h under common/ frontend/ worker/
#             balancer/ tools/ tests/unit/ tests/fuzz/, and tests/bench/*.c)
#
# Exits 0 when every file is formatted (or was formatted), 1 when --check found differences,
# 2 on a usage error or a missing formatter (deploy/install-deps.sh --test installs it).
set -euo pipefail

cd "$(dirname "$0")/.."

check=0
files=()
for arg in "$@"; do
    case "$arg" in
    --check) check=1 ;;
    -h | --help)
        sed -n '2,12p' "$0"
        exit 0
        ;;
    -*)
        echo "format.sh: unknown option: $arg (see --help)" >&2
        exit 2
        ;;
    *) files+=("$arg") ;;
    esac
done

CF=${FV_CLANG_FORMAT:-}
if [ -z "$CF" ]; then
    for c in clang-format-14 clang-format; do
        if command -v "$c" >/dev/null 2>&1; then
            CF=$c
            break
        fi
    done
fi
if [ -z "$CF" ] || ! "$CF" --version 2>/dev/null | grep -qE 'clang-format version 14\.'; then
    echo "format.sh: clang-format 14 not found${CF:+ ($CF is $("$CF" --version 2>/dev/null))};" \
        "apt-get install clang-format-14" >&2
    exit 2
fi

if [ "${#files[@]}" -eq 0 ]; then
    mapfile -t files < <(find common frontend worker balancer tools tests/unit tests/fuzz -type f \
        \( -name '*.c' -o -name '*.h' \) | sort; ls tests/bench/*.c)
fi

style="--style=file:$(pwd)/.clang-format"
differ=()
for f in "${files[@]}"; do
    if [ "$check" = 1 ]; then
        if ! "$CF" "$style" "$f" | cmp -s - "$f"; then
            differ+=("$f")
        fi
    else
        "$CF" "$style" -i "$f"
    fi
done

if [ "$check" = 1 ]; then
    if [ "${#differ[@]}" -gt 0 ]; then
        printf '%s\n' "${differ[@]}"
        echo "format.sh: ${#differ[@]} of ${#files[@]} files differ from $CF's formatting;" \
            "run tools/format.sh to format them" >&2
        exit 1
    fi
    echo "format.sh: all ${#files[@]} files formatted"
fi
