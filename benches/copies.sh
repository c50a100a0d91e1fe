#!/usr/bin/env bash
# The cost of CSI copies (issue 25): N claims of M MiB each copied into one
# repository by `hokan k8s volumes copy`, at most P at once (the policy's
# `copies.parallel`), as the operator's copy Jobs run it; then the second
# copy of the unchanged claims, each read from a fresh copy of its files
# (new inodes and change times, the same modification times: what a claim
# made from the next snapshot looks like). Prints wall time, the largest
# peak RSS of one copy, and what the second copy read and added.
#
#   benches/copies.sh [N] [M] [P] [WORK]    (defaults: 8 64 2 /work/bench/copies)
#
# HOKAN_BIN names another build of `hokan` (default: target/release/hokan,
# built if missing). Disk: about 3 x N x M MiB under WORK.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-8}
m=${2:-64}
p=${3:-2}
work=${4:-/work/bench/copies}
hokan=${HOKAN_BIN:-$here/target/release/hokan}
[ -x "$hokan" ] || cargo build --release -q -p hokan-cli --manifest-path "$here/Cargo.toml"
rm -rf "$work"
mkdir -p "$work"
export HOKAN_REPOSITORY="$work/repo" HOKAN_PASSWORD=copies
"$hokan" -q init --kdf-memory 1M --kdf-iterations 1 >/dev/null
# Each claim: M files of 1 MiB, half random and half text-like (what a
# database's files compress like), plus a thousand small files.
for i in $(seq 1 "$n"); do
  d="$work/claims/c$i"
  mkdir -p "$d/small"
  for f in $(seq 1 "$m"); do
    if [ $((f % 2)) -eq 0 ]; then
      head -c 1048576 /dev/urandom >"$d/f$f"
    else
      { yes "claim $i file $f row $RANDOM" || true; } | head -c 1048576 >"$d/f$f"
    fi
  done
  for s in $(seq 1 1000); do echo "small $i $s" >"$d/small/s$s"; done
done
copy() { # $1: round, $2: claim number
  local dir="$work/$1/c$2"
  /usr/bin/time -f "%e %M" -o "$work/time-$1-$2" \
    "$hokan" --no-cache k8s volumes copy "$dir" --namespace bench --claim "c$2" --json \
    >"$work/out-$1-$2.json"
}
export -f copy
export work hokan
run() { # $1: round
  local start end
  start=$(date +%s.%N)
  seq 1 "$n" | xargs -P "$p" -I{} bash -c "copy $1 {}"
  end=$(date +%s.%N)
  local peak
  peak=$(cat "$work"/time-"$1"-* | awk '{ if ($2 > m) m = $2 } END { print m }')
  local added unmod
  added=$(cat "$work"/out-"$1"-*.json | grep -o '"data_added":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
  unmod=$(cat "$work"/out-"$1"-*.json | grep -o '"files_unmodified":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
  printf '%-7s %3d claims x %4d MiB, %d at once: %6.2f s wall, peak RSS of one copy %6.1f MiB, %5d files unmodified, %8.1f MiB added  (load %s)\n' \
    "$1" "$n" "$m" "$p" "$(echo "$end - $start" | bc)" "$(echo "$peak / 1024" | bc -l)" "$unmod" \
    "$(echo "$added / 1048576" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
}
mv "$work/claims" "$work/first"
run first
# The next snapshot of unchanged claims: new inodes, the same mtimes.
cp -a "$work/first" "$work/second"
run second
du -sh "$work/repo" | awk '{ print "repository: " $1 }'
