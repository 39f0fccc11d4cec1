#!/usr/bin/env bash
# Install imgup into .venv and run the main job on the built-in local stack:
# deploy, upload the example images, list the gallery. No AWS account needed.
set -euo pipefail
cd "$(dirname "$0")/.."

# imgup needs Python 3.11 or newer; PYTHON picks another interpreter (e.g. PYTHON=python3.12).
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "imgup needs Python 3.11 or newer; $python is $("$python" --version 2>&1 || echo missing)." >&2
    echo "Run again with PYTHON=python3.12 (or another 3.11+ interpreter)." >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'

imgup=.venv/bin/imgup
$imgup deploy --local
$imgup upload examples/*
$imgup list

cat >&2 <<'MSG'

Done: a gallery runs on the local stack. Try next:
  source .venv/bin/activate
  imgup list --json            # the gallery as JSON on stdout
  imgup upload my-photo.jpg    # your own images
  imgup cleanup --yes          # tear everything down (and stop the local stack)
MSG
