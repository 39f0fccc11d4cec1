#!/usr/bin/env bash
# LocalStack (host mode, no Docker) for the strict-S3 conformance tier (tests/strict_s3).
#
#   .ci/localstack.sh install   create .tools/localstack-venv (Python 3.13) and install
#                               localstack-core; idempotent: a complete venv is left as is
#   .ci/localstack.sh python    print the venv's interpreter path (exit 1 when not installed)
#
# Environment:
#   IMGUP_LOCALSTACK_PY313   the Python 3.13 interpreter to build the venv with
#                            (default: python3.13 on PATH, then pyenv's 3.13.0)
#   IMGUP_LOCALSTACK_VENV    venv location (default: <repo>/.tools/localstack-venv)
#
# The tests start LocalStack themselves (tests/strict_s3/conftest.py); this script only installs.
set -euo pipefail

LOCALSTACK_SPEC="localstack-core[base-runtime]==2026.3.0"
PINS=("cbor2<6" "pyopenssl<26")

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IMGUP_LOCALSTACK_VENV:-$ROOT/.tools/localstack-venv}"
LOG_DIR="$ROOT/.tools"
LOG="$LOG_DIR/localstack-install.log"
# Written last by a successful install; its content says what was installed.
STAMP="$VENV/.imgup-installed"
STAMP_TEXT="$LOCALSTACK_SPEC ${PINS[*]}"

find_python313() {
    local candidate
    for candidate in "${IMGUP_LOCALSTACK_PY313:-}" "$(command -v python3.13 || true)" \
        /root/.pyenv/versions/3.13.0/bin/python3 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

installed() {
    [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] &&
        "$VENV/bin/python" -c 'import localstack.runtime.main' >/dev/null 2>&1
}

cmd_install() {
    local start=$SECONDS
    if installed; then
        echo "localstack: already installed in ${VENV#"$ROOT"/} ($("$VENV/bin/python" -m pip show localstack-core 2>/dev/null | sed -n 's/^Version: //p'))"
        return 0
    fi
    if [ -z "$VENV" ] || [ "$VENV" = "/" ] || [ "$VENV" = "$ROOT" ]; then
        echo "localstack: refusing to (re)create the venv at '$VENV'" >&2
        return 1
    fi
    local py
    if ! py="$(find_python313)"; then
        echo "localstack: install FAILED: no Python 3.13 interpreter found (set IMGUP_LOCALSTACK_PY313)" >&2
        return 1
    fi
    mkdir -p "$LOG_DIR"
    : >"$LOG"
    {
        echo "# $(date -u +%FT%TZ) installing $STAMP_TEXT into $VENV with $py"
        # (set -e does not apply on the left of ||: each step is chained explicitly)
        rm -rf "$VENV" &&
            "$py" -m venv "$VENV" &&
            "$VENV/bin/python" -m pip install "$LOCALSTACK_SPEC" "${PINS[@]}" &&
            "$VENV/bin/python" -c 'import localstack.runtime.main'
    } >>"$LOG" 2>&1 || {
        echo "localstack: install FAILED after $((SECONDS - start)) s; last lines of ${LOG#"$ROOT"/}:" >&2
        tail -n 20 "$LOG" >&2
        rm -rf "$VENV"
        return 1
    }
    echo "$STAMP_TEXT" >"$STAMP"
    echo "localstack: installed $STAMP_TEXT in ${VENV#"$ROOT"/} in $((SECONDS - start)) s (log: ${LOG#"$ROOT"/})"
}

cmd_python() {
    if installed; then echo "$VENV/bin/python"; else return 1; fi
}

case "${1:-}" in
    install) cmd_install ;;
    python) cmd_python ;;
    *)
        echo "usage: $0 install|python" >&2
        exit 2
        ;;
esac
