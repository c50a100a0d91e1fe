#!/usr/bin/env bash
# Builds a series of compacted + defragmented etcd 3.4 snapshots and prints
# what hokan's bbolt-aware split stores of them, and restic beside it when
# restic is installed.
#
#   crates/hokan-etcd/bench/series.sh [DIR [KEYS [SNAPSHOTS [VALUE_SIZE]]]]
#
# Defaults: DIR=target/etcd-series, 40000 keys of ~3000-byte ConfigMap JSON,
# 6 snapshots; between two snapshots 2% of the keys are rewritten and 1%
# added, then `etcdctl compact` + `etcdctl defrag` + `etcdctl snapshot save`.
# Needs Debian's etcd-server and etcd-client.
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir=${1:-target/etcd-series}
keys=${2:-40000}
snapshots=${3:-6}
size=${4:-3000}

nice -n 10 cargo build --release -p hokan-etcd --example series
bin=${CARGO_TARGET_DIR:-target}/release/examples/series
rm -rf "$dir" && mkdir -p "$dir"
"$bin" build "$dir" "$keys" "$snapshots" "$size"
files=$(ls "$dir"/snapshot-*.db | sort -V)
echo "== hokan (bbolt-aware split: unique records + chunked layout + record lists)"
"$bin" measure $files

if command -v restic >/dev/null; then
  echo "== restic (default chunker, compression auto)"
  export RESTIC_REPOSITORY="$dir/restic" RESTIC_PASSWORD=bench
  restic init -q
  logical=0
  for f in $files; do
    restic backup -q "$f" >/dev/null
    logical=$((logical + $(stat -c %s "$f")))
  done
  stored=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)
  awk -v l="$logical" -v s="$stored" 'BEGIN { printf "restic: logical %d B, stored %d B, ratio %.2fx\n", l, s, l / s }'
else
  echo "== restic not installed: skipped (the lead's harness runs it)"
fi
