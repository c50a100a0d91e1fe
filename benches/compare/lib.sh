# Shared by run.sh and series.sh: logging, installing, building hokan (the
# working tree, and optionally an older revision as a baseline).
# Callers set REPO_ROOT, WORK, LOGS and NO_INSTALL before using these.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
loud() {
    printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf '!!! %s\n' "$@" >&2
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    # apt_install PKG... ; runs apt-get update and retries once on failure.
    if (( NO_INSTALL )); then return 1; fi
    if ! have apt-get; then return 1; fi
    log "apt-get install -y $*"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >"$LOGS/apt-install.log" 2>&1; then
        return 0
    fi
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update >"$LOGS/apt-update.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$LOGS/apt-install.log" 2>&1
}

# cargo_target_dir DIR -> where cargo puts build output for the workspace at
# DIR (honours CARGO_TARGET_DIR and .cargo/config.toml).
cargo_target_dir() {
    (cd "$1" && cargo metadata --format-version 1 --no-deps 2>/dev/null) |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# build_hokan SRC TARGET_DIR LOG -> prints the path of the built binary.
# TARGET_DIR may be empty (cargo's own choice).
build_hokan() {
    local src=$1 target=$2 logf=$3
    if [[ -n "$target" ]]; then
        (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release -p hokan-cli) >"$logf" 2>&1 || return 1
        echo "$target/release/hokan"
    else
        (cd "$src" && cargo build --release -p hokan-cli) >"$logf" 2>&1 || return 1
        echo "$(cargo_target_dir "$src")/release/hokan"
    fi
}

# build_baseline REV -> prints the path of a hokan binary built from git
# revision REV of REPO_ROOT. The sources are exported with `git archive`
# (no worktree is touched) into $WORK/baseline/<rev>/src and built in
# $WORK/baseline/<rev>/target; a finished build is reused. REV may also be
# the path of a hokan binary built elsewhere.
build_baseline() {
    local rev full dir
    rev=$1
    if [[ -f "$rev" && -x "$rev" ]]; then echo "$rev"; return 0; fi
    full=$(git -C "$REPO_ROOT" rev-parse --verify "$rev^{commit}") || return 1
    dir="$WORK/baseline/${full:0:12}"
    if [[ -x "$dir/hokan" ]]; then echo "$dir/hokan"; return 0; fi
    rm -rf "$dir/src"; mkdir -p "$dir/src"
    git -C "$REPO_ROOT" archive "$full" | tar -x -C "$dir/src" || return 1
    local bin
    log "building baseline hokan at ${full:0:12} (once; cached in $dir)" >&2
    bin=$(build_hokan "$dir/src" "$dir/target" "$LOGS/hokan-baseline-build.log") || return 1
    cp -f "$bin" "$dir/hokan"
    echo "$dir/hokan"
}

# probe_hokan BIN PASSWORD -> 0 if BIN can init, back up and restore a tiny
# tree; otherwise prints why and returns 1.
probe_hokan() {
    local bin=$1 password=$2 p="$WORK/probe/hokan" out
    rm -rf "$p"; mkdir -p "$p/src/sub" "$p/restore"
    echo hello >"$p/src/a.txt"; head -c 100000 /dev/urandom >"$p/src/sub/b.bin"
    ln -s a.txt "$p/src/link"
    if ! out=$(HOKAN_PASSWORD="$password" "$bin" -r "$p/repo" --cache-dir "$p/cache" init 2>&1); then
        echo "probe 'hokan init' failed: $(tail -n1 <<<"$out")"; return 1
    fi
    if ! out=$(HOKAN_PASSWORD="$password" "$bin" -r "$p/repo" --cache-dir "$p/cache" backup "$p/src" 2>&1); then
        echo "probe 'hokan backup DIR' failed: $(tail -n1 <<<"$out")"; return 1
    fi
    if ! out=$(HOKAN_PASSWORD="$password" "$bin" -r "$p/repo" --cache-dir "$p/cache" restore latest --target "$p/restore" 2>&1); then
        echo "probe 'hokan restore latest --target DIR' failed: $(tail -n1 <<<"$out")"; return 1
    fi
    if ! diff -r --no-dereference "$p/src" "$p/restore$p/src" >/dev/null 2>&1; then
        echo "probe restore differs from the source"; return 1
    fi
    rm -rf "$p"
}
