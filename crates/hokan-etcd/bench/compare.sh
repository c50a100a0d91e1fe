#!/usr/bin/env bash
# hokan's etcd source beside restic and etcdctl, on this machine, in one run:
#
#  1. dedup: a series of compacted + defragmented snapshots (bench/series.sh's; built here
#     if DIR has none), stored with `hokan etcd import` each and with `restic backup` each:
#     logical / stored for both;
#  2. speed: one snapshot (the first of the series, ~165 MB) served by a real etcd member:
#     `etcdctl snapshot save` beside `hokan etcd backup` (live, streamed) and
#     `hokan etcd restore`, seconds, and the peak RSS of `hokan etcd backup`;
#  3. objects: a snapshot of N Kubernetes objects (default 100000) imported, then
#     `hokan etcd ls` and one `hokan etcd get` timed.
#
#   crates/hokan-etcd/bench/compare.sh [DIR]     (DIR: the series, default target/etcd-series)
#
# Environment: OBJECTS (default 100000), WORK (scratch, default target/etcd-compare),
# CARGO_TARGET_DIR. Needs Debian's etcd-server, etcd-client and restic (apt-get install
# etcd-server etcd-client restic) and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../../.."
series=${1:-target/etcd-series}
work=${WORK:-target/etcd-compare}
objects=${OBJECTS:-100000}
target=${CARGO_TARGET_DIR:-target}

for tool in etcd etcdctl restic /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "needs $tool (see the header)" >&2; exit 1; }
done
nice -n 10 cargo build --release -q -p hokan-cli
nice -n 10 cargo build --release -q -p hokan-etcd --example series --example cluster
hokan=$target/release/hokan
cluster=$target/release/examples/cluster
export HOKAN_PASSWORD=bench RESTIC_PASSWORD=bench ETCDCTL_API=3

if ! compgen -G "$series/snapshot-*.db" >/dev/null; then
    echo "== building the series in $series"
    mkdir -p "$series"
    "$target/release/examples/series" build "$series"
fi
mapfile -t files < <(ls "$series"/snapshot-*.db | sort -V)
rm -rf "$work" && mkdir -p "$work"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

echo "== 1. dedup over ${#files[@]} compacted + defragmented snapshots"
"$hokan" -r "$work/hokan" init -q
restic -r "$work/restic" init -q
logical=0 hokan_s=0 restic_s=0
for f in "${files[@]}"; do
    logical=$((logical + $(stat -c %s "$f")))
    t=$(now); "$hokan" -r "$work/hokan" -q etcd import "$f"; hokan_s=$(add "$hokan_s" "$(secs "$t" "$(now)")")
    t=$(now); restic -r "$work/restic" backup -q "$f" >/dev/null; restic_s=$(add "$restic_s" "$(secs "$t" "$(now)")")
done
hokan_stored=$(du -sb "$work/hokan" | cut -f1)
restic_stored=$(du -sb "$work/restic" | cut -f1)
awk -v l="$logical" -v h="$hokan_stored" -v r="$restic_stored" -v hs="$hokan_s" -v rs="$restic_s" 'BEGIN {
    printf "logical %d B\n", l
    printf "hokan etcd import: stored %d B, ratio %.2fx, %.1f s\n", h, l / h, hs
    printf "restic backup:     stored %d B, ratio %.2fx, %.1f s\n", r, l / r, rs
}'

echo "== 2. one snapshot served by a live member: ${files[0]} ($(mib "$(stat -c %s "${files[0]}")"))"
coproc SERVE { exec "$cluster" serve "${files[0]}"; }
read -r url <&"${SERVE[0]}"
"$hokan" -r "$work/live" init -q
etcdctl --endpoints "$url" endpoint health >/dev/null
t=$(now); etcdctl --endpoints "$url" snapshot save "$work/etcdctl.db" >/dev/null 2>&1
echo "etcdctl snapshot save: $(secs "$t" "$(now)") s"
t=$(now)
/usr/bin/time -v -o "$work/time.txt" "$hokan" -r "$work/live" -q etcd backup --endpoints "$url"
echo "hokan etcd backup:     $(secs "$t" "$(now)") s, peak RSS $(awk '/Maximum resident/ { printf "%.1f MiB", $6 / 1024 }' "$work/time.txt")"
t=$(now); "$hokan" -r "$work/live" -q etcd backup --endpoints "$url"
echo "hokan etcd backup, again (all records known): $(secs "$t" "$(now)") s"
t=$(now); "$hokan" -r "$work/live" -q etcd restore latest -o "$work/restored.db"
echo "hokan etcd restore:    $(secs "$t" "$(now)") s"
cmp -s "$work/restored.db" "$work/etcdctl.db" && echo "restored file is byte-identical to etcdctl's"
t=$(now); etcdctl snapshot restore "$work/restored.db" --data-dir "$work/member" >/dev/null 2>&1
echo "etcdctl snapshot restore (into a data dir, for reference): $(secs "$t" "$(now)") s"
exec {SERVE[1]}>&-
wait "$SERVE_PID" || true

echo "== 3. $objects Kubernetes objects"
"$cluster" objects "$work/objects.db" "$objects"
"$hokan" -r "$work/objects" init -q
"$hokan" -r "$work/objects" -q etcd import "$work/objects.db"
t=$(now); n=$("$hokan" -r "$work/objects" --json etcd ls latest | wc -l)
echo "hokan etcd ls:  $n objects in $(secs "$t" "$(now)") s"
t=$(now); "$hokan" -r "$work/objects" etcd ls latest >/dev/null
echo "hokan etcd ls (table): $(secs "$t" "$(now)") s"
t=$(now); "$hokan" -r "$work/objects" etcd get latest deployments/team-0/obj-50000 -o json >/dev/null
echo "hokan etcd get: one Deployment in $(secs "$t" "$(now)") s"
