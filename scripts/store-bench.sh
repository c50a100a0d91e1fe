#!/usr/bin/env bash
# Backup and restore seconds of one tree on every store, in one table.
#
# Usage: scripts/store-bench.sh TREE [HOKAN_BIN]
#
# TREE is a directory (the README's figures use Django 5.1.4's wheel,
# unpacked: `pip download --no-deps Django==5.1.4` and unzip it: 3,658 files,
# 32 MB). HOKAN_BIN defaults to target/release/hokan. Stores whose script's
# env file is missing are left out; start them first (scripts/*.sh start).
# Each run uses a fresh prefix and a fresh cache, and restores into an empty
# directory, compared with the source afterwards; the table shows the best
# of ROUNDS (3) runs.
set -euo pipefail

SCRIPT_NAME=store-bench.sh
# shellcheck source=lib/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

[[ $# -ge 1 ]] || die "usage: $0 TREE [HOKAN_BIN]"
TREE="$(cd "$1" && pwd)"
BIN="${2:-$REPO_ROOT/target/release/hokan}"
[[ -x "$BIN" ]] || die "$BIN is not an executable; build it (cargo build --release -p hokan-cli) or name one"
# The restore target's file system can cost more than the store: on this
# project's machines creating 3,658 files on the root disk takes ~2 s of
# system time, on /dev/shm 0.1 s. TMPDIR=/dev/shm measures the store.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export HOKAN_PASSWORD=bench

seconds() { # runs "$@" quietly, prints its wall time
	local start end
	start=$(date +%s.%N)
	"$@" >"$WORK/out" 2>&1 || {
		cat "$WORK/out" >&2
		die "failed: $*"
	}
	end=$(date +%s.%N)
	awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

# The best of ROUNDS runs, each into a fresh repository: on a shared
# machine the minimum is the figure least disturbed by other work.
ROUNDS="${ROUNDS:-3}"

bench() { # name, location
	local name="$1" base="$2" b r best_b="" best_r="" i repo
	for ((i = 1; i <= ROUNDS; i++)); do
		repo="$base-$i"
		rm -rf "$WORK/cache" "$WORK/restored"
		"$BIN" -r "$repo" --cache-dir "$WORK/cache" init --kdf-memory 1M >/dev/null 2>&1 || die "init of $repo failed"
		b=$(seconds "$BIN" -r "$repo" --cache-dir "$WORK/cache" backup "$TREE")
		rm -rf "$WORK/cache"
		r=$(seconds "$BIN" -r "$repo" --cache-dir "$WORK/cache" restore latest --target "$WORK/restored")
		# The tree comes back under its absolute path.
		diff -r "$TREE" "$WORK/restored$TREE" >/dev/null || die "$name: the restored tree differs"
		best_b=$(awk -v a="$b" -v m="${best_b:-$b}" 'BEGIN { print (a < m ? a : m) }')
		best_r=$(awk -v a="$r" -v m="${best_r:-$r}" 'BEGIN { print (a < m ? a : m) }')
	done
	printf '| %-22s | %8.2f | %9.2f |\n' "$name" "$best_b" "$best_r"
}

files=$(find "$TREE" -type f | wc -l)
size=$(du -s --apparent-size --block-size=1M "$TREE" | cut -f1)
echo "tree: $TREE ($files files, $size MiB); binary: $BIN"
echo "| store                  | backup s | restore s |"
echo "|------------------------|----------|-----------|"
suffix="bench-$(date +%s)-$$"
bench "local" "$WORK/repo"
for s in garage azurite gcs-emulator moto; do
	env_file="$REPO_ROOT/target/$s/env"
	[[ -f "$env_file" ]] || {
		log "no $env_file; $s left out"
		continue
	}
	(
		set -a
		# shellcheck disable=SC1090
		. "$env_file"
		set +a
		case $s in
		garage) bench "Garage (S3)" "$HOKAN_TEST_S3_URL/$suffix" ;;
		azurite) bench "Azurite (Azure Blob)" "$HOKAN_TEST_AZURE_URL/$suffix" ;;
		gcs-emulator) bench "GCS emulator" "$HOKAN_TEST_GCS_URL/$suffix" ;;
		moto)
			# moto's open server takes any credentials, but some must be set.
			export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-moto}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-moto}"
			bench "moto (S3, Object Lock)" "$HOKAN_TEST_MOTO_URL/$suffix"
			;;
		esac
	)
done
