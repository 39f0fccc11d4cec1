#!/usr/bin/env bash
# Smoke test of imgup installed the way a user installs it, on one Python version:
#
#   .ci/smoke.sh 3.12
#
# a fresh venv with that Python, `pip install -c constraints.txt <repo>` (a real install, not
# an editable one), then the real `imgup` command: deploy --local, upload the example images,
# list --json, cleanup --yes. It runs in a fresh HOME (so in a fresh ~/.config/imgup) and from
# that HOME, not from the repository. The interpreter is python<version> on PATH, else pyenv's
# newest <version>.x; a missing interpreter is a failure (CI claims every version it names).
set -euo pipefail

#   .ci/smoke.sh --which 3.12     only print the interpreter it would use (exit 1 if none)
which_only=""
if [ "${1:-}" = "--which" ]; then
    which_only=1
    shift
fi
version="${1:?usage: .ci/smoke.sh [--which] PYTHON_VERSION (e.g. 3.12)}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS

find_python() {
    local candidate
    for candidate in "$(command -v "python$version" || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".* 2>/dev/null | sort -V -r | sed 's|$|/bin/python3|'); do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

say() { echo "smoke $version: $*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}

python="$(find_python)" || fail "no Python $version found (python$version on PATH, or pyenv install $version)"
if [ -n "$which_only" ]; then
    echo "$python"
    exit 0
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/imgup-smoke-$version.XXXXXX")"
venv="$work/venv"
imgup="$venv/bin/imgup"

finish() {
    local code=$?
    if [ -x "$imgup" ]; then  # whatever happened, leave no local stack running
        HOME="$work/home" "$imgup" local stop >/dev/null 2>&1 || true
    fi
    if [ "$code" -ne 0 ] && [ -d "$work/home" ]; then
        say "logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap finish EXIT

say "$("$python" --version) at $python"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -c "$root/constraints.txt" "$root" ||
    fail "pip install -c constraints.txt failed on Python $version"
install_seconds=$((SECONDS - started))

# A new user: an empty HOME, no imgup settings, fake AWS credentials (the local stack needs none).
mkdir -p "$work/home"
cd "$work/home"
unset IMGUP_CONFIG_DIR XDG_CONFIG_HOME AWS_PROFILE AWS_ENDPOINT_URL AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
unset IMGUP_STACK_NAME IMGUP_REGION IMGUP_PROFILE IMGUP_TARGET IMGUP_CONCURRENCY IMGUP_RETRIES IMGUP_TIMEOUT
export HOME="$work/home" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export NO_COLOR=1

"$imgup" deploy --local 2>"$work/deploy.err" || fail "imgup deploy --local: $(cat "$work/deploy.err")"
"$imgup" upload "$root"/examples/* --jsonl >"$work/uploaded.jsonl" 2>"$work/upload.err" ||
    fail "imgup upload: $(cat "$work/upload.err")"
"$imgup" list --json >"$work/listed.json" 2>"$work/list.err" || fail "imgup list --json: $(cat "$work/list.err")"
"$venv/bin/python" - "$work/uploaded.jsonl" "$work/listed.json" "$root/examples" <<'CHECK' || fail "the gallery does not hold the uploads"
import json, pathlib, sys

uploaded = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
listed = json.load(open(sys.argv[2]))
examples = sorted(p.name for p in pathlib.Path(sys.argv[3]).iterdir())
assert sorted(u["fileName"] for u in uploaded) == examples, (uploaded, examples)
assert sorted(i["imageId"] for i in listed) == sorted(u["imageId"] for u in uploaded), listed
CHECK
"$imgup" cleanup --yes 2>"$work/cleanup.err" || fail "imgup cleanup --yes: $(cat "$work/cleanup.err")"
if "$imgup" local status >/dev/null 2>&1; then
    fail "the local stack still runs after cleanup"
fi
say "ok (install ${install_seconds} s, total $((SECONDS - started)) s)"
