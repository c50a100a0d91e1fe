#!/usr/bin/env bash
# Repository size before and after forgetting half the snapshots of a real
# tree, and prune's time and peak memory.
#
# Eight versions of the Linux 6.1 source (as benches/compare/run.sh
# extracts it): version k appends a line to every file under a different
# top-level directory. Each version is backed up; then the four oldest
# snapshots are forgotten and the repository pruned, two-phase (mark, then
# delete after the grace period) and, on a copy, with --instant-delete.
#
#   benches/prune.sh [CORPUS] [WORK]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-/work/bench/corpus/linux-source-6.1}
work=${2:-/work/bench/prune}
[ -d "$corpus" ] || { echo "no corpus at $corpus (run benches/compare/run.sh once)"; exit 1; }
cargo build --release -q -p hokan-cli --manifest-path "$here/Cargo.toml"
hokan="$here/target/release/hokan"
export HOKAN_PASSWORD=prune-bench
rm -rf "$work"; mkdir -p "$work"
cp -a "$corpus" "$work/tree"
repo="$work/repo"
"$hokan" -r "$repo" init -q
dirs=(arch Documentation fs include kernel net sound tools)
for k in "${!dirs[@]}"; do
    if [ "$k" -gt 0 ]; then
        find "$work/tree/${dirs[$k]}" -type f -print0 | xargs -0 -n 500 sh -c 'for f; do printf "\n/* hokan edit %s */\n" "$0" >> "$f"; done' "$k"
    fi
    "$hokan" -r "$repo" backup "$work/tree" -q
done
size() { du -sb "$1/data" | cut -f1; }
echo "snapshots: $("$hokan" -r "$repo" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
before=$(size "$repo")
"$hokan" -r "$repo" forget --keep-last 4 -q
for th in 50 20 10 5; do cp -a "$repo" "$work/repo-$th"; done
t() { /usr/bin/time -f "%e s, peak RSS %M KB" "$@" 2>&1 >/dev/null | tail -1; }
echo "repository before: $before bytes"
echo "prune (phase 1, mark):       $(t "$hokan" -r "$repo" prune)  -> $(size "$repo") bytes"
echo "prune --grace 0s (delete):   $(t "$hokan" -r "$repo" prune --grace 0s)  -> $(size "$repo") bytes"
for th in 50 20 10 5; do
    echo "prune --instant-delete --max-unused $th%: $(t "$hokan" -r "$work/repo-$th" prune --instant-delete --max-unused $th%)  -> $(size "$work/repo-$th") bytes"
done
echo "check --read-data:           $(t "$hokan" -r "$repo" check --read-data)"
"$hokan" -r "$repo" check -q && echo "check: no errors"
