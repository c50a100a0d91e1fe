#!/usr/bin/env bash
# Compare hokan with restic, rustic and borg on one directory tree:
# first backup, unchanged re-backup, restore. Prints wall time, peak memory
# (max RSS) and repository size per tool, and hokan's ratio to each.
#
# Usage: benches/compare/run.sh [--corpus DIR] [--tools hokan,restic,rustic,borg]
#                               [--baseline REV] [--work DIR] [--json FILE]
#                               [--repeat N] [--warm] [--no-install] [--keep-restore]
#                               [--restore-on-work]
# See benches/compare/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# ---------------------------------------------------------------- options --
CORPUS=""
TOOLS="hokan,restic,rustic,borg"
WORK="/work/bench"
JSON_OUT=""
REPEAT=1
FORCE_WARM=0
NO_INSTALL=0
KEEP_RESTORE=0
RESTORE_ON_WORK=0
BASELINE=""
PASSWORD="${BENCH_PASSWORD:-compare-bench-password}"
LINUX_PKG="linux-source-6.1"

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --corpus DIR     tree to back up (default: $WORK/corpus/linux-source-6.1,
                   extracted from Debian's linux-source-6.1 package)
  --tools LIST     comma-separated subset of hokan,restic,rustic,borg
  --baseline REV   also run hokan built from git revision REV (as the tool
                   hokan-base), e.g. --baseline cef87b7
  --work DIR       scratch directory for corpus, repos, caches, restores, logs
                   (default /work/bench)
  --json FILE      also write every raw figure as JSON to FILE
  --repeat N       run every tool's three phases N times, report the median
  --warm           do not drop the page cache; pre-read the corpus instead
  --no-install     do not apt-get/cargo install anything; missing tools are
                   reported as unavailable
  --keep-restore   keep $WORK/restore/<tool> after verification (as root, on
                   the mounted $WORK/restore/<tool>.img; unmount it after)
  --restore-on-work  restore onto the work disk, not a fresh ext4 made per
                   restore (the default as root)
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --corpus) CORPUS="$2"; shift 2 ;;
        --corpus=*) CORPUS="${1#*=}"; shift ;;
        --tools) TOOLS="$2"; shift 2 ;;
        --tools=*) TOOLS="${1#*=}"; shift ;;
        --baseline) BASELINE="$2"; shift 2 ;;
        --baseline=*) BASELINE="${1#*=}"; shift ;;
        --work) WORK="$2"; shift 2 ;;
        --work=*) WORK="${1#*=}"; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        --json=*) JSON_OUT="${1#*=}"; shift ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --repeat=*) REPEAT="${1#*=}"; shift ;;
        --warm) FORCE_WARM=1; shift ;;
        --no-install) NO_INSTALL=1; shift ;;
        --keep-restore) KEEP_RESTORE=1; shift ;;
        --restore-on-work) RESTORE_ON_WORK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat needs a positive integer" >&2; exit 2; }
IFS=',' read -r -a TOOL_LIST <<<"$TOOLS"
[[ -n "$BASELINE" ]] && TOOL_LIST+=(hokan-base)
for t in "${TOOL_LIST[@]}"; do
    case "$t" in hokan|hokan-base|restic|rustic|borg) ;; *) echo "unknown tool: $t" >&2; exit 2 ;; esac
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
[[ -n "$JSON_OUT" && "$JSON_OUT" != /* ]] && JSON_OUT="$PWD/$JSON_OUT"

RESULTS="$WORK/results"
LOGS="$WORK/logs"
rm -rf "$RESULTS" "$LOGS"
mkdir -p "$RESULTS" "$LOGS" "$WORK/repos" "$WORK/cache" "$WORK/restore"
RAW="$RESULTS/raw.tsv"        # tool rep key value
STATUS="$RESULTS/status.tsv"  # tool status version note
META="$RESULTS/meta.tsv"      # key value
COMMANDS="$RESULTS/commands.tsv"  # tool phase command
: >"$RAW"; : >"$STATUS"; : >"$META"; : >"$COMMANDS"

# ---------------------------------------------------------------- helpers --
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
raw() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }
set_status() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STATUS"; }

# ------------------------------------------------------------ prerequisites --
ensure_basics() {
    if [[ ! -x /usr/bin/time ]]; then
        apt_install time || { echo "GNU time (/usr/bin/time) is required" >&2; exit 1; }
    fi
    if ! have python3; then
        apt_install python3 || { echo "python3 is required for the report" >&2; exit 1; }
    fi
}

wants() { local t; for t in "${TOOL_LIST[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }

ensure_apt_tools() {
    local missing=()
    if wants restic && ! have restic; then missing+=(restic); fi
    if wants borg && ! have borg; then missing+=(borgbackup); fi
    if (( ${#missing[@]} )); then
        apt_install "${missing[@]}" || warn "could not install ${missing[*]}"
    fi
}

RUSTIC_BIN=""
ensure_rustic() {
    wants rustic || return 0
    if have rustic; then RUSTIC_BIN=$(command -v rustic)
    elif [[ -x "$HOME/.cargo/bin/rustic" ]]; then RUSTIC_BIN="$HOME/.cargo/bin/rustic"
    elif (( NO_INSTALL )); then return 0
    elif have cargo; then
        log "installing rustic: cargo install rustic-rs --locked (this takes 10+ minutes)"
        local t0=$SECONDS
        if cargo install rustic-rs --locked >"$LOGS/rustic-install.log" 2>&1; then
            RUSTIC_BIN="$HOME/.cargo/bin/rustic"
            log "rustic installed in $((SECONDS - t0)) s"
            meta rustic_install_seconds "$((SECONDS - t0))"
        else
            warn "cargo install rustic-rs failed after $((SECONDS - t0)) s; see $LOGS/rustic-install.log"
        fi
    fi
}

HOKAN_BIN=""
HOKAN_NOTE=""
BASE_BIN=""
BASE_NOTE=""
ensure_hokan() {
    wants hokan || return 0
    local bin target
    target=$(cargo_target_dir "$REPO_ROOT")
    if (( NO_INSTALL )) && [[ -x "$target/release/hokan" ]]; then
        log "--no-install: using the existing $target/release/hokan without rebuilding"
        bin="$target/release/hokan"
    else
        log "building hokan: cargo build --release -p hokan-cli (in $REPO_ROOT, target $target)"
        if ! bin=$(build_hokan "$REPO_ROOT" "" "$LOGS/hokan-build.log"); then
            HOKAN_NOTE="cargo build --release -p hokan-cli failed (see $LOGS/hokan-build.log)"
            tail -n 20 "$LOGS/hokan-build.log" >&2 || true
            return 0
        fi
    fi
    if [[ ! -x "$bin" ]]; then HOKAN_NOTE="no binary at $bin"; return 0; fi
    HOKAN_NOTE=$(probe_hokan "$bin" "$PASSWORD") || return 0
    # Pin the binary: other builds in the same target directory may replace
    # target/release/hokan while the benchmark runs.
    mkdir -p "$WORK/bin"
    cp -f "$bin" "$WORK/bin/hokan"
    HOKAN_BIN="$WORK/bin/hokan"
}

ensure_baseline() {
    [[ -n "$BASELINE" ]] || return 0
    local bin
    if ! bin=$(build_baseline "$BASELINE"); then
        BASE_NOTE="building revision $BASELINE failed (see $LOGS/hokan-baseline-build.log)"
        return 0
    fi
    BASE_NOTE=$(probe_hokan "$bin" "$PASSWORD") || return 0
    BASE_BIN="$bin"
}

tool_bin() {
    case "$1" in
        hokan) echo "$HOKAN_BIN" ;;
        hokan-base) echo "$BASE_BIN" ;;
        restic) command -v restic || true ;;
        borg) command -v borg || true ;;
        rustic) echo "$RUSTIC_BIN" ;;
    esac
}

tool_version() {
    local b; b=$(tool_bin "$1")
    case "$1" in
        hokan) "$b" --version 2>/dev/null | head -n1
               local rev; rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
               if [[ -n "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n1)" ]]; then rev="$rev+dirty"; fi
               echo " (git $rev)" ;;
        hokan-base) "$b" --version 2>/dev/null | head -n1
               if [[ -f "$BASELINE" ]]; then echo " ($BASELINE)"
               else echo " (git $(git -C "$REPO_ROOT" rev-parse --short "$BASELINE^{commit}"))"; fi ;;
        restic) "$b" version | head -n1 ;;
        borg) "$b" --version | head -n1 ;;
        rustic) "$b" --version | head -n1 ;;
    esac | tr -d '\n'
}

# ------------------------------------------------------------------ corpus --
ensure_corpus() {
    if [[ -n "$CORPUS" ]]; then
        [[ -d "$CORPUS" ]] || { echo "corpus $CORPUS is not a directory" >&2; exit 1; }
        CORPUS=$(cd "$CORPUS" && pwd -P)
        return 0
    fi
    local dir="$WORK/corpus/$LINUX_PKG" marker="$WORK/corpus/.$LINUX_PKG.complete"
    if [[ -d "$dir" && -f "$marker" ]]; then
        CORPUS="$dir"; return 0
    fi
    local tarball="/usr/src/$LINUX_PKG.tar.xz"
    if [[ ! -f "$tarball" ]]; then
        apt_install "$LINUX_PKG" || { echo "cannot install $LINUX_PKG for the default corpus" >&2; exit 1; }
    fi
    log "extracting $tarball into $WORK/corpus (once)"
    rm -rf "$dir" "$WORK/corpus/.extract"
    mkdir -p "$WORK/corpus/.extract"
    local t0=$SECONDS
    tar -xJf "$tarball" -C "$WORK/corpus/.extract"
    mv "$WORK/corpus/.extract/$LINUX_PKG" "$dir"
    rmdir "$WORK/corpus/.extract"
    touch "$marker"
    log "extracted in $((SECONDS - t0)) s"
    meta corpus_extract_seconds "$((SECONDS - t0))"
    CORPUS="$dir"
}

# ------------------------------------------------------------ page cache ----
CACHE_MODE="warm"
probe_drop_caches() {
    if (( FORCE_WARM )); then CACHE_MODE="warm (--warm)"; return; fi
    if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
        CACHE_MODE="cold"
    else
        CACHE_MODE="warm (drop_caches not permitted)"
    fi
}
before_phase() {
    # Called before every timed phase.
    if [[ "$CACHE_MODE" == cold ]]; then
        sync; echo 3 >/proc/sys/vm/drop_caches
    fi
}
warm_corpus() {
    [[ "$CACHE_MODE" == cold ]] && return 0
    find "$CORPUS" -type f -print0 | xargs -0 -r cat >/dev/null
}

# ----------------------------------------------------------- tool commands --
# Every tool gets its own repository, cache directory and environment.
tool_env() {
    # Prints NAME=VALUE lines for `env`.
    local tool=$1 cache="$WORK/cache/$1"
    case "$tool" in
        hokan|hokan-base) echo "HOKAN_PASSWORD=$PASSWORD" ;;
        restic) echo "RESTIC_PASSWORD=$PASSWORD" ;;
        rustic) echo "RUSTIC_PASSWORD=$PASSWORD"; echo "RUSTIC_NO_PROGRESS=true" ;;
        borg) echo "BORG_PASSPHRASE=$PASSWORD"
              echo "BORG_CACHE_DIR=$cache"
              echo "BORG_CONFIG_DIR=$cache/config"
              echo "BORG_SECURITY_DIR=$cache/security"
              echo "BORG_KEYS_DIR=$cache/keys"
              echo "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes" ;;
    esac
}

# tool_cmd TOOL PHASE -> fills the array CMD (and CMD_DIR for borg extract)
CMD=()
CMD_DIR=""
tool_cmd() {
    local tool=$1 phase=$2 bin repo="$WORK/repos/$1" cache="$WORK/cache/$1" target="$WORK/restore/$1"
    bin=$(tool_bin "$tool")
    CMD_DIR=""
    case "$tool:$phase" in
        hokan*:init)    CMD=("$bin" -r "$repo" --cache-dir "$cache" init) ;;
        hokan*:backup*) CMD=("$bin" -r "$repo" --cache-dir "$cache" backup "$CORPUS") ;;
        hokan*:restore) CMD=("$bin" -r "$repo" --cache-dir "$cache" restore latest --target "$target") ;;

        # restic 0.14 still creates format v1 (no compression) unless asked;
        # --compression auto is the default and means zstd "SpeedDefault" of
        # klauspost/compress, documented as roughly zstd level 3.
        restic:init)    CMD=("$bin" -r "$repo" --cache-dir "$cache" init --repository-version 2) ;;
        restic:backup*) CMD=("$bin" -r "$repo" --cache-dir "$cache" --compression auto backup "$CORPUS") ;;
        restic:restore) CMD=("$bin" -r "$repo" --cache-dir "$cache" restore latest --target "$target") ;;

        # rustic: zstd level 3 is stored in the repository config at init.
        rustic:init)    CMD=("$bin" --no-progress -r "$repo" --cache-dir "$cache" init --set-compression 3) ;;
        rustic:backup*) CMD=("$bin" --no-progress -r "$repo" --cache-dir "$cache" backup "$CORPUS") ;;
        rustic:restore) CMD=("$bin" --no-progress -r "$repo" --cache-dir "$cache" restore latest "$target") ;;

        borg:init)      CMD=("$bin" init --encryption=repokey-blake2 "$repo") ;;
        # --stats, and on the re-backup --list --filter=AME (only new, changed
        # or failed files), are cheap and show in the log whether borg's files
        # cache was used.
        borg:backup1)   CMD=("$bin" create --stats --compression zstd,3 "$repo::first" "$CORPUS") ;;
        borg:backup2)   CMD=("$bin" create --stats --list --filter=AME --compression zstd,3 "$repo::second" "$CORPUS") ;;
        borg:restore)   CMD=("$bin" extract "$repo::second"); CMD_DIR="$target" ;;
    esac
}

show_cmd() {
    # The command line as one would type it: quote only words that need it.
    local w out=""
    for w in "$@"; do
        if [[ "$w" =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then out+="$w "; else out+="$(printf '%q' "$w") "; fi
    done
    printf '%s' "${out% }"
}

record_command() {
    local tool=$1 phase=$2 s
    s=$(show_cmd "${CMD[@]}")
    [[ -n "$CMD_DIR" ]] && s="cd $(show_cmd "$CMD_DIR") && $s"
    printf '%s\t%s\t%s\n' "$tool" "$phase" "$s" >>"$COMMANDS"
}

# run_untimed TOOL PHASE -> exit status
run_untimed() {
    local tool=$1 phase=$2 logf="$LOGS/$1-$2.log"
    local envs=()
    tool_cmd "$tool" "$phase"
    mapfile -t envs < <(tool_env "$tool")
    (( REP == 1 )) && record_command "$tool" "$phase"
    ( [[ -n "$CMD_DIR" ]] && cd "$CMD_DIR"; env "${envs[@]}" "${CMD[@]}" ) </dev/null >"$logf" 2>&1
}

# run_timed TOOL PHASE -> records <phase>_s and <phase>_kb; exit status of the tool
run_timed() {
    local tool=$1 phase=$2 logf="$LOGS/$1-$2-rep$REP.log" tf="$RESULTS/time-$1-$2-$REP"
    local envs=()
    tool_cmd "$tool" "$phase"
    mapfile -t envs < <(tool_env "$tool")
    (( REP == 1 )) && record_command "$tool" "$phase"
    before_phase
    log "  $tool $phase: ${CMD_DIR:+cd $CMD_DIR && }$(show_cmd "${CMD[@]}")"
    local rc=0
    ( [[ -n "$CMD_DIR" ]] && cd "$CMD_DIR"
      env "${envs[@]}" /usr/bin/time -f '%e %M' -o "$tf" "${CMD[@]}" ) </dev/null >"$logf" 2>&1 || rc=$?
    if (( rc != 0 )); then
        warn "$tool $phase exited with status $rc; last lines of $logf:"
        tail -n 15 "$logf" >&2 || true
        raw "$tool" "$REP" "${phase}_error" "exit $rc"
        return "$rc"
    fi
    local secs kb
    read -r secs kb < <(tail -n1 "$tf")
    raw "$tool" "$REP" "${phase}_s" "$secs"
    raw "$tool" "$REP" "${phase}_kb" "$kb"
    log "    -> ${secs} s, max RSS $((kb / 1024)) MiB"
}

repo_size() { du -sb "$WORK/repos/$1" | cut -f1; }

# -------------------------------------------------------------- verification --
manifest() {
    # Type, mode, owner, size (not for directories), mtime in whole seconds
    # (not for symlinks), symlink target, path; one line per entry.
    (cd "$1" && find . -printf '%y\t%m\t%U:%G\t%s\t%T@\t%l\t%p\n') |
        awk -F'\t' 'BEGIN{OFS="\t"} { if ($1=="d") $4="-"; if ($1=="l") $5="-"; else { split($5,a,"."); $5=a[1] } print }' |
        LC_ALL=C sort -t$'\t' -k7
}

verify_restore() {
    local tool=$1 dest="$WORK/restore/$1" root=""
    local c
    for c in "$dest$CORPUS" "$dest/$(basename "$CORPUS")" "$dest"; do
        if [[ -d "$c" && -e "$c/$(ls -A "$CORPUS" | head -n1)" ]]; then root="$c"; break; fi
    done
    if [[ -z "$root" ]]; then
        loud "RESTORE MISMATCH ($tool): cannot find the restored corpus under $dest"
        raw "$tool" "$REP" verify "MISMATCH: restored tree not found"
        return 0
    fi
    local difflog="$LOGS/$tool-verify-rep$REP.diff"
    local ndiff=0
    diff -rq --no-dereference "$CORPUS" "$root" >"$difflog" 2>&1 || true
    ndiff=$(wc -l <"$difflog")
    local metalog="$LOGS/$tool-verify-meta-rep$REP.diff"
    diff <(manifest "$CORPUS") <(manifest "$root") >"$metalog" 2>&1 || true
    local nmeta; nmeta=$(grep -c '^[<>]' "$metalog" || true)
    if (( ndiff > 0 )); then
        loud "RESTORE MISMATCH ($tool): $ndiff differences in content/structure between" \
             "$CORPUS and $root (see $difflog)" "$(head -n 5 "$difflog")"
        raw "$tool" "$REP" verify "MISMATCH: $ndiff content differences"
    elif (( nmeta > 0 )); then
        warn "$tool restore: contents match, but $nmeta manifest lines differ (mode/owner/mtime); see $metalog"
        head -n 6 "$metalog" >&2
        raw "$tool" "$REP" verify "contents ok, metadata differs ($nmeta lines)"
    else
        log "    verify: restore matches the corpus (contents and metadata)"
        raw "$tool" "$REP" verify "ok"
    fi
}

# ------------------------------------------------------------------ one run --
run_tool() {
    local tool=$1
    local repo="$WORK/repos/$tool" cache="$WORK/cache/$tool" target="$WORK/restore/$tool"
    mountpoint -q "$target" && umount "$target"
    rm -rf "$repo" "$cache" "$target" "$target.img"
    mkdir -p "$cache" "$target"
    if ! run_untimed "$tool" init; then
        warn "$tool init failed:"; tail -n 15 "$LOGS/$tool-init.log" >&2
        raw "$tool" "$REP" init_error "failed"
        return 0
    fi
    warm_corpus
    run_timed "$tool" backup1 || return 0
    raw "$tool" "$REP" repo_after_backup1_bytes "$(repo_size "$tool")"
    run_timed "$tool" backup2 || return 0
    raw "$tool" "$REP" repo_bytes "$(repo_size "$tool")"
    fresh_restore_fs "$target"
    run_timed "$tool" restore || { raw "$tool" "$REP" verify "restore failed"; drop_restore_fs "$target"; return 0; }
    verify_restore "$tool"
    (( KEEP_RESTORE )) || { drop_restore_fs "$target"; rm -rf "$target"; }
}

# Restores go onto a freshly made ext4 (a loop device, journal on, as mkfs
# makes it) when run as root. Restoring into a directory of the work disk
# just emptied by the previous run's `rm -rf` measured the file system, not
# the tool: on an ext4 without a journal (the project's VMs) the inode
# allocator skips inodes deleted in the last minutes one buffer lookup at a
# time, which made the same restore 4-5x slower from the second run on.
RESTORE_FS="work disk"
fresh_restore_fs() {
    local target=$1 img="$1.img" size
    (( EUID == 0 )) && have mkfs.ext4 && (( ! RESTORE_ON_WORK )) || return 0
    size=$(( $(du -sb "$CORPUS" | cut -f1) * 2 + (1 << 30) ))
    rm -f "$img"; truncate -s "$size" "$img"
    if mkfs.ext4 -q -F "$img" && mount -o loop "$img" "$target"; then
        RESTORE_FS="fresh ext4 on a loop device"
    else
        warn "could not mount a fresh ext4 for the restore; restoring onto the work disk"
        rm -f "$img"
    fi
}
drop_restore_fs() {
    local target=$1
    mountpoint -q "$target" && umount "$target"
    rm -f "$target.img"
}

# -------------------------------------------------------------------- main --
main() {
    log "work directory: $WORK"
    ensure_basics
    ensure_apt_tools
    ensure_rustic
    ensure_corpus
    ensure_hokan
    ensure_baseline
    probe_drop_caches

    # Machine and corpus facts.
    local cpu mem files bytes dirs links
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
    files=$(find "$CORPUS" -type f | wc -l)
    dirs=$(find "$CORPUS" -type d | wc -l)
    links=$(find "$CORPUS" -type l | wc -l)
    bytes=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
    meta nproc "$(nproc)"; meta mem_total "$mem"; meta cpu "$cpu"
    meta kernel "$(uname -r)"; meta corpus "$CORPUS"; meta corpus_files "$files"
    meta corpus_dirs "$dirs"; meta corpus_symlinks "$links"; meta corpus_bytes "$bytes"
    meta page_cache "$CACHE_MODE"; meta restore_fs "$([[ $EUID == 0 && $RESTORE_ON_WORK == 0 ]] && echo "fresh ext4 per restore (loop)" || echo "work disk")"; meta repeat "$REPEAT"; meta date "$(date -u +%FT%TZ)"
    meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

    # Which tools can run, and their versions.
    local runnable=() t b v note
    for t in "${TOOL_LIST[@]}"; do
        b=$(tool_bin "$t")
        if [[ "$t" == hokan && -z "$b" ]]; then
            loud "hokan is unavailable: ${HOKAN_NOTE:-unknown reason}" "the other tools still run"
            set_status hokan unavailable "" "$HOKAN_NOTE"; continue
        fi
        if [[ "$t" == hokan-base && -z "$b" ]]; then
            loud "hokan-base ($BASELINE) is unavailable: ${BASE_NOTE:-unknown reason}"
            set_status hokan-base unavailable "" "$BASE_NOTE"; continue
        fi
        if [[ -z "$b" || ! -x "$b" ]]; then
            warn "$t is unavailable (not installed and could not be installed); skipping it"
            set_status "$t" unavailable "" "not installed"; continue
        fi
        v=$(tool_version "$t")
        note=""
        [[ "$t" == hokan ]] && note="$HOKAN_NOTE"
        set_status "$t" ok "$v" "$note"
        runnable+=("$t")
    done

    python3 "$SCRIPT_DIR/report.py" facts "$RESULTS"

    for (( REP = 1; REP <= REPEAT; REP++ )); do
        for t in "${runnable[@]}"; do
            log "== $t (run $REP of $REPEAT) =="
            run_tool "$t"
        done
    done
    meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

    python3 "$SCRIPT_DIR/report.py" report "$RESULTS" ${JSON_OUT:+"$JSON_OUT"}
}

REP=1
main
