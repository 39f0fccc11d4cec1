#!/usr/bin/env bash
# checkov's CloudFormation checks on infra.yaml (issue 3, item 7).
#
#   .ci/checkov.sh          install checkov into .tools/checkov-venv when missing, then scan;
#                           exits non-zero when any check fails (or checkov cannot run)
#
# checkov pins an old boto3, so it lives in its own virtual environment and is never a
# project dependency. A check is skipped only inline, in the Metadata of the resource it
# does not fit, with the reason written next to it.
#
# Environment:
#   IMGUP_CHECKOV_PYTHON   interpreter to build the venv with (default: python3.12, then python3)
#   IMGUP_CHECKOV_VENV     venv location (default: <repo>/.tools/checkov-venv)
set -euo pipefail

CHECKOV_SPEC="checkov==3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IMGUP_CHECKOV_VENV:-$ROOT/.tools/checkov-venv}"
# Written last by a successful install; its content says what was installed.
STAMP="$VENV/.imgup-installed"
LOG="$ROOT/.tools/checkov-install.log"

find_python() {
    local candidate
    for candidate in "${IMGUP_CHECKOV_PYTHON:-}" "$(command -v python3.12 || true)" \
        "$(command -v python3 || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' \
            2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [ ! -x "$VENV/bin/checkov" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$CHECKOV_SPEC" ]; then
    PYTHON="$(find_python)" || {
        echo "checkov.sh: no Python 3.9-3.12 found (set IMGUP_CHECKOV_PYTHON)" >&2
        exit 2
    }
    echo "checkov.sh: installing $CHECKOV_SPEC into $VENV" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")" "$(dirname "$LOG")"
    "$PYTHON" -m venv "$VENV"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$CHECKOV_SPEC" \
        >"$LOG" 2>&1; then
        tail -n 20 "$LOG" >&2
        echo "checkov.sh: pip install failed; full log in $LOG" >&2
        exit 2
    fi
    echo "$CHECKOV_SPEC" >"$STAMP"
fi

cd "$ROOT"
# --skip-download: no Prisma Cloud/bridgecrew calls; checkov exits 1 when a check fails.
exec "$VENV/bin/checkov" -f infra.yaml --framework cloudformation --skip-download \
    --compact --quiet
