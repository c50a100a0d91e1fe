#!/usr/bin/env bash
# Memory and time against the repository's size (issue 26): a generated
# repository of N small blobs across M snapshots (examples/scale_repo.rs),
# then opening its index (without a cache, with an empty cache, with a warm
# one), and the peak RSS and time of an incremental backup, of check, of
# prune and of copy. Each figure is printed with the load average beside
# it: the machine may be shared.
#
#   benches/scale.sh [N] [M] [WORK]     (defaults: 1000000 10 /work/bench/scale)
#
# HOKAN_BIN and SCALE_BIN name other builds of `hokan` and of the example
# (to measure an older release against the same repository).
#
# The repository is kept under WORK/repo-N and reused by later runs (it is
# never modified: backup, check and prune run on a copy made of hard links,
# which is safe because a local repository's files are only ever written to
# a temporary name and renamed, never changed in place). Disk: about
# 170 bytes a blob for the repository (1 M blobs: 0.16 GB; 10 M: 1.6 GB;
# 100 M: 16 GB), plus what the runs add.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
m=${2:-10}
work=${3:-/work/bench/scale}
hokan=${HOKAN_BIN:-$here/target/release/hokan}
gen=${SCALE_BIN:-$here/target/release/examples/scale_repo}
[ -n "${HOKAN_BIN:-}" ] || cargo build --release -q -p hokan-cli --manifest-path "$here/Cargo.toml"
[ -n "${SCALE_BIN:-}" ] || cargo build --release -q --example scale_repo --manifest-path "$here/Cargo.toml"
export HOKAN_PASSWORD=scale
# The default cache (a local repository's holds only the mapped index) goes
# under WORK, not into the home directory.
export HOKAN_CACHE_DIR="$work/default-cache"
mkdir -p "$work"
repo="$work/repo-$n"
if [ ! -f "$repo/config" ]; then
    rm -rf "$repo"
    /usr/bin/time -f "generate: %e s, peak RSS %M KB" "$gen" generate "$repo" "$n" "$m"
fi
load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { printf '%-38s %-48s load %s\n' "$1" "$2" "$(load)"; }
# Peak RSS and wall time of a command, its output dropped.
t() { /usr/bin/time -f "%e s, peak RSS %M KB" "$@" 2>&1 >/dev/null | tail -1; }

echo "N=$n blobs, M=$m snapshots, $(du -sh "$repo" | cut -f1) on disk, $(nproc) cores"
cache="$work/cache-$n"
rm -rf "$cache"
say "open, no cache" "$("$gen" open "$repo")"
say "open, empty cache (cold)" "$("$gen" open "$repo" "$cache")"
say "open, warm cache" "$("$gen" open "$repo" "$cache")"
say "open, warm cache (again)" "$("$gen" open "$repo" "$cache")"

copy="$work/copy-$n"
rm -rf "$copy"
cp -al "$repo" "$copy"
src="$work/source"
if [ ! -d "$src" ]; then
    mkdir -p "$src"
    for i in $(seq 1 200); do head -c $((i * 512)) /dev/urandom > "$src/file-$i"; done
fi
rm -rf "$HOKAN_CACHE_DIR"
say "backup (incremental), no cache" "$(t "$hokan" -r "$copy" --no-cache backup "$src" -q)"
say "backup, default cache (empty)" "$(t "$hokan" -r "$copy" backup "$src" -q)"
say "backup, default cache (warm)" "$(t "$hokan" -r "$copy" backup "$src" -q)"
say "backup (incremental), warm cache" "$(t "$hokan" -r "$copy" --cache-dir "$cache" backup "$src" -q)"
say "check" "$(t "$hokan" -r "$copy" check -q)"
"$hokan" -r "$copy" forget --keep-last "$((m - 1))" -q
say "prune (after forgetting 1 of $m)" "$(t "$hokan" -r "$copy" prune -q)"
rm -rf "$copy"

# copy: the latest snapshot (every generation's directory) into an empty
# repository with keys of its own (every blob read and stored again); then
# the nightly off-site case, a target sharing the source's ids that holds
# every earlier snapshot already (only the newest generation moves).
export HOKAN_FROM_PASSWORD=scale
target="$work/copy-target-$n"
rm -rf "$target"
"$hokan" -r "$target" --cache-dir "$cache" init -q >/dev/null
say "copy latest, empty target, own keys" \
    "$(t "$hokan" -r "$target" --cache-dir "$cache" copy --from-repo "$repo" latest -q)"
rm -rf "$target"
"$hokan" -r "$target" --cache-dir "$cache" init -q --copy-chunker-params-from "$repo" >/dev/null
older=$("$hokan" -r "$repo" --cache-dir "$cache" snapshots --json \
    | python3 -c 'import json,sys; s=sorted(json.load(sys.stdin),key=lambda e:e["time"]); print(" ".join(e["id"] for e in s[:-1]))')
# shellcheck disable=SC2086 # one argument per snapshot id
"$hokan" -r "$target" --cache-dir "$cache" copy --from-repo "$repo" $older -q
say "copy latest, shared ids, incremental" \
    "$(t "$hokan" -r "$target" --cache-dir "$cache" copy --from-repo "$repo" latest -q)"
rm -rf "$target"
rm -rf "$HOKAN_CACHE_DIR"
