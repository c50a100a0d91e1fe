# Shared helpers for the scripts that run test servers on loopback
# (azurite.sh, gcs-emulator.sh, moto.sh). Sourced, not run: the caller sets
# SCRIPT_NAME before sourcing, and STATE_DIR, PID_FILE, LOG_FILE, ENV_FILE
# before calling the server functions.
#
# Installed tools go to $HOKAN_TOOLS_DIR (default ~/.cache/hokan-tools), one
# directory per tool and version, so a second checkout on the same machine
# (or CI after a developer's session) starts at once instead of installing
# again. Server state (data, pid, log, env file) lives under target/.

SERVERS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVERS_LIB_DIR/../.." && pwd)"
TOOLS_DIR="${HOKAN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hokan-tools}"

log() { echo "$SCRIPT_NAME: $*" >&2; }
die() {
	echo "$SCRIPT_NAME: error: $*" >&2
	exit 1
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if $PID_FILE names a live process whose command line contains $1
# (so a recycled pid is not taken for our server).
server_alive() {
	local pid
	[[ -s "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -qa -- "$1" "/proc/$pid/cmdline" 2>/dev/null
}

# Creates (or reuses) a Python virtual environment at $1 holding the pip
# requirement specs that follow. A marker file records what was installed,
# so a changed pin reinstalls and an unchanged one costs nothing.
ensure_venv() {
	local dir="$1"
	shift
	local want="$*"
	if [[ -x "$dir/bin/python" && -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" ]]; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 || die "python3 is needed to install $want (Debian: apt-get install python3 python3-venv)"
	log "installing $want into $dir (about 10-40 s)..."
	rm -rf "$dir"
	python3 -m venv "$dir" >&2 || die "python3 -m venv $dir failed (Debian: apt-get install python3-venv)"
	# Retried once: a registry hiccup should not fail a CI run.
	if ! "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2; then
		log "pip install failed; retrying once"
		"$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2 || die "pip install $want failed"
	fi
	echo "$want" >"$dir/.installed"
}

# Installs npm package spec $2 into prefix $1 (reused if already there).
ensure_npm() {
	local dir="$1" spec="$2"
	if [[ -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$spec" ]]; then
		return 0
	fi
	command -v npm >/dev/null 2>&1 || die "npm is needed to install $spec (Debian: apt-get install nodejs npm)"
	log "installing $spec with npm into $dir (about 40 s)..."
	rm -rf "$dir"
	mkdir -p "$dir"
	if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$spec" >&2; then
		log "npm install failed; retrying once"
		npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$spec" >&2 || die "npm install $spec failed"
	fi
	echo "$spec" >"$dir/.installed"
}

# Starts "$@" detached (no inherited stdio, so CI steps do not wait on it),
# records its pid, and waits until port $PORT answers and, if READY_CHECK
# names a command, that command succeeds. On failure shows the log's tail.
start_daemon() {
	local port="$1" timeout="$2"
	shift 2
	local pid deadline
	port_open "$port" && die "port 127.0.0.1:$port is already in use (pick another with the script's *_PORT variable)"
	echo "==== $(date -u +%FT%TZ) $SCRIPT_NAME start ====" >>"$LOG_FILE"
	nohup "$@" </dev/null >>"$LOG_FILE" 2>&1 &
	pid=$!
	echo "$pid" >"$PID_FILE"
	deadline=$((SECONDS + timeout))
	until port_open "$port" && { [[ -z "${READY_CHECK:-}" ]] || $READY_CHECK >/dev/null 2>&1; }; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			echo "---- last lines of $LOG_FILE ----" >&2
			tail -n 30 "$LOG_FILE" >&2
			die "the server exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			echo "---- last lines of $LOG_FILE ----" >&2
			tail -n 30 "$LOG_FILE" >&2
			kill "$pid" 2>/dev/null || true
			rm -f "$PID_FILE"
			die "the server did not answer on port $port within ${timeout}s"
		fi
		sleep 0.3
	done
	log "up on 127.0.0.1:$port (pid $pid, log $LOG_FILE)"
}

# Stops the server in $PID_FILE if it is ours (its command line holds $1).
stop_daemon() {
	local pid i
	if ! server_alive "$1"; then
		rm -f "$PID_FILE"
		return 0
	fi
	pid="$(cat "$PID_FILE")"
	log "stopping pid $pid"
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$PID_FILE"
}

# Writes stdin to $ENV_FILE atomically, readable only by us (it may hold keys).
write_env_file() {
	(
		umask 077
		cat >"$ENV_FILE.tmp"
	)
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# Resolves STATE_DIR ($1 or the default $2) to an absolute path and sets the
# usual file names in it.
set_state_dir() {
	STATE_DIR="${1:-$2}"
	[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
	STATE_DIR="${STATE_DIR%/}"
	PID_FILE="$STATE_DIR/server.pid"
	LOG_FILE="$STATE_DIR/server.log"
	ENV_FILE="$STATE_DIR/env"
	mkdir -p "$STATE_DIR"
}
