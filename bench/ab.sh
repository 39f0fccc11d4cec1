#!/usr/bin/env bash
# A/B of two imgup checkouts on the same files, under the same conditions: each checkout
# deploys a local stack of its own, both are warmed with 20 files, then they take turns,
# one upload after the other (the paths on stdin, `imgup upload - -q`), deleting what each
# run stored before the next, and waiting for each stack's background work (S3 events,
# thumbnails) before the other's turn. Prints the wall seconds of every round.
#
#   bash bench/ab.sh BASE_DIR NEW_DIR PATHS_FILE [ROUNDS]
#
# BASE_DIR and NEW_DIR are checkouts with their own .venv (e.g. `git worktree add ../base
# <commit>`, then `python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e .`);
# PATHS_FILE lists image files, one per line (bench/load.py's write_images makes them).
# Fake credentials, temporary config directories, 127.0.0.1 only; both stacks are cleaned up.
set -euo pipefail
base=$(cd "$1" && pwd); new=$(cd "$2" && pwd); paths=$3; rounds=${4:-3}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 NO_COLOR=1
work=$(mktemp -d)
cleanup() {
    status=$?
    if [ "$status" -ne 0 ] && [ -s "$work/log" ]; then
        tail -20 "$work/log" >&2
    fi
    for side in base new; do
        IMGUP_CONFIG_DIR="$work/$side" "${dirs[$side]}/.venv/bin/imgup" cleanup --yes >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
declare -A dirs=([base]=$base [new]=$new)
settle() {  # until the side's stack has no S3 event or asynchronous invocation left to run
    "${dirs[$1]}/.venv/bin/python" - "$work/$1/local/local.json" <<'PY'
import json, sys, time, urllib.request

url = json.load(open(sys.argv[1]))["endpointUrl"].rstrip("/") + "/_imgup/health"
for _ in range(1200):  # 2 minutes at most
    health = json.load(urllib.request.urlopen(url, timeout=10))
    if health.get("eventsPending", 0) + health.get("asyncPending", 0) == 0:
        break
    time.sleep(0.1)
PY
}
trap cleanup EXIT
for side in base new; do  # as an installed package is (see compile_imgup in bench/upload.py)
    "${dirs[$side]}/.venv/bin/python" -m compileall -q "${dirs[$side]}/imgup" >/dev/null
done
head -20 "$paths" > "$work/warm"
for side in base new; do
    imgup="${dirs[$side]}/.venv/bin/imgup"
    export IMGUP_CONFIG_DIR="$work/$side"
    "$imgup" deploy --local >/dev/null 2>>"$work/log"
    "$imgup" upload - -q < "$work/warm" >/dev/null 2>>"$work/log"
    "$imgup" list --all -q 2>>"$work/log" | "$imgup" delete - --yes -q >/dev/null 2>>"$work/log"
    settle "$side"
done
sleep 1
for round in $(seq "$rounds"); do
    line="round $round:"
    for side in base new; do
        imgup="${dirs[$side]}/.venv/bin/imgup"
        export IMGUP_CONFIG_DIR="$work/$side"
        started=$(date +%s.%N)
        "$imgup" upload - -q < "$paths" >/dev/null 2>>"$work/log"
        line="$line $side $(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.2f') s"
        settle "$side"  # its S3 events and thumbnails, before the other side's turn
        "$imgup" list --all -q 2>>"$work/log" | "$imgup" delete - --yes -q >/dev/null 2>>"$work/log"
        settle "$side"
        sleep 1
    done
    echo "$line"
done
