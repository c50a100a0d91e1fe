#!/usr/bin/env bash
# Run a throw-away single-node Garage S3 server on loopback for hokan's tests.
#
# Usage:
#   scripts/garage.sh start [STATE_DIR]   install garage if needed, start + configure it,
#                                         write STATE_DIR/env and print it
#   scripts/garage.sh stop  [STATE_DIR]   stop the server (data is kept)
#   scripts/garage.sh env   [STATE_DIR]   print the env file (source it: `. STATE_DIR/env`)
#
# STATE_DIR defaults to <repo>/target/garage.
#
# Environment knobs:
#   GARAGE_S3_PORT (3900), GARAGE_RPC_PORT (3901), GARAGE_ADMIN_PORT (3903)
#   GARAGE_BIN            use this garage binary instead of looking one up / installing
#   GARAGE_START_TIMEOUT  seconds to wait for the server to come up (60)
set -euo pipefail

readonly GARAGE_VERSION="2.5.0"
readonly BUCKET="hokan-test"
readonly KEY_NAME="hokan-test-key"
readonly REGION="garage"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
readonly SCRIPT_DIR REPO_ROOT

S3_PORT="${GARAGE_S3_PORT:-3900}"
RPC_PORT="${GARAGE_RPC_PORT:-3901}"
ADMIN_PORT="${GARAGE_ADMIN_PORT:-3903}"
START_TIMEOUT="${GARAGE_START_TIMEOUT:-60}"

# Variables garage reads from the environment; a stray value from the caller's
# shell would silently override our config file, so drop them.
unset GARAGE_RPC_HOST GARAGE_CONFIG_FILE GARAGE_RPC_SECRET GARAGE_RPC_SECRET_FILE \
	GARAGE_ADMIN_TOKEN GARAGE_ADMIN_TOKEN_FILE GARAGE_METRICS_TOKEN GARAGE_METRICS_TOKEN_FILE

log() { echo "garage.sh: $*" >&2; }
die() {
	echo "garage.sh: error: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $0 {start|stop|env} [STATE_DIR]
  start  install (if needed), start and configure a single-node Garage; writes STATE_DIR/env
  stop   stop the Garage started for STATE_DIR (data is kept)
  env    print STATE_DIR/env
STATE_DIR defaults to $REPO_ROOT/target/garage
EOF
	exit 2
}

# ---------------------------------------------------------------- helpers

random_hex32() {
	if command -v openssl >/dev/null 2>&1; then
		openssl rand -hex 32
	else
		od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
		echo
	fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if the pid file names a live garage process (not a recycled pid).
server_alive() {
	local pid
	[[ -s "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -qa garage "/proc/$pid/cmdline" 2>/dev/null || return 1
}

# Value of `key = "value"` (or bare value) in section $2 ("" = top level) of garage.toml.
toml_get() {
	local key="$1" section="$2"
	awk -v key="$key" -v want="$section" '
		/^[[:space:]]*\[/ { sect = $0; gsub(/[][[:space:]]/, "", sect); next }
		sect == want && $1 == key {
			sub(/^[^=]*=[[:space:]]*/, ""); gsub(/"/, ""); print; exit
		}' "$CONFIG"
}

# Run garage against our config. CLI commands talk to the server over RPC.
g() {
	"$GARAGE" -c "$CONFIG" "$@"
}

# Retry a command a few times: right after startup/layout changes the cluster
# may briefly report "quorum not reached" or similar transient errors.
retry() {
	local n=0 out
	while true; do
		if out="$("$@" 2>&1)"; then
			printf '%s\n' "$out"
			return 0
		fi
		n=$((n + 1))
		if ((n >= 10)); then
			printf '%s\n' "$out" >&2
			return 1
		fi
		sleep 1
	done
}

# ---------------------------------------------------------------- install

# Sets $GARAGE to a garage $GARAGE_VERSION binary, installing it with cargo if needed.
find_or_install_garage() {
	local candidate version
	local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin/garage"

	if [[ -n "${GARAGE_BIN:-}" ]]; then
		[[ -x "$GARAGE_BIN" ]] || die "GARAGE_BIN=$GARAGE_BIN is not an executable"
		GARAGE="$GARAGE_BIN"
		return
	fi

	for candidate in "$(command -v garage 2>/dev/null || true)" "$cargo_bin"; do
		[[ -n "$candidate" && -x "$candidate" ]] || continue
		# v1 and v2 CLIs differ, so insist on the version this script was written for.
		version="$("$candidate" --version 2>/dev/null || true)"
		if [[ "$version" == *"$GARAGE_VERSION"* ]]; then
			GARAGE="$candidate"
			return
		fi
		log "ignoring $candidate ($version), want v$GARAGE_VERSION"
	done

	command -v cargo >/dev/null 2>&1 || die "garage v$GARAGE_VERSION not found and cargo is not available to install it"
	log "installing garage v$GARAGE_VERSION with cargo (takes ~10 minutes)..."
	cargo install garage --locked --version "$GARAGE_VERSION" >&2 ||
		die "cargo install garage --version $GARAGE_VERSION failed"
	[[ -x "$cargo_bin" ]] || die "cargo install succeeded but $cargo_bin is missing"
	GARAGE="$cargo_bin"
}

# ---------------------------------------------------------------- server

write_config() {
	local rpc_secret="" admin_token=""
	# Keep the secrets of an existing config (restart after stop), but rewrite
	# the rest so changed port variables take effect.
	if [[ -f "$CONFIG" ]]; then
		rpc_secret="$(toml_get rpc_secret "")"
		admin_token="$(toml_get admin_token admin)"
	fi
	[[ "$rpc_secret" =~ ^[0-9a-f]{64}$ ]] || rpc_secret="$(random_hex32)"
	[[ -n "$admin_token" ]] || admin_token="$(random_hex32)"

	mkdir -p "$STATE_DIR/meta" "$STATE_DIR/data"
	(
		umask 077 # the file holds secrets
		cat >"$CONFIG.tmp" <<EOF
# Generated by scripts/garage.sh; regenerated on every start (secrets are kept).
metadata_dir = "$STATE_DIR/meta"
data_dir = "$STATE_DIR/data"
db_engine = "sqlite"

replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$rpc_secret"

[s3_api]
api_bind_addr = "127.0.0.1:$S3_PORT"
s3_region = "$REGION"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$admin_token"
EOF
	)
	mv "$CONFIG.tmp" "$CONFIG"
}

start_server() {
	local port pid deadline
	for port in "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT"; do
		port_open "$port" && die "port 127.0.0.1:$port is already in use (set GARAGE_S3_PORT/GARAGE_RPC_PORT/GARAGE_ADMIN_PORT to pick others)"
	done

	log "starting garage server (log: $LOG_FILE)"
	echo "==== $(date -u +%FT%TZ) garage.sh start ====" >>"$LOG_FILE"
	# Detach fully (no inherited stdio) so CI steps do not wait on the daemon;
	# NO_COLOR keeps ANSI escapes out of the log file.
	NO_COLOR=1 nohup "$GARAGE" -c "$CONFIG" server </dev/null >>"$LOG_FILE" 2>&1 &
	pid=$!
	echo "$pid" >"$PID_FILE"

	deadline=$((SECONDS + START_TIMEOUT))
	until port_open "$S3_PORT" && g status >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			echo "---- last lines of $LOG_FILE ----" >&2
			tail -n 30 "$LOG_FILE" >&2
			die "garage server exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			echo "---- last lines of $LOG_FILE ----" >&2
			tail -n 30 "$LOG_FILE" >&2
			kill "$pid" 2>/dev/null || true
			rm -f "$PID_FILE"
			die "garage did not answer within ${START_TIMEOUT}s"
		fi
		sleep 1
	done
	log "garage is up (pid $pid)"
}

stop_server() {
	local pid i
	if ! server_alive; then
		log "no running garage for $STATE_DIR"
		rm -f "$PID_FILE"
		return 0
	fi
	pid="$(cat "$PID_FILE")"
	log "stopping garage (pid $pid)"
	kill "$pid"
	for ((i = 0; i < 30; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "garage did not exit after SIGTERM, sending SIGKILL"
		kill -9 "$pid" 2>/dev/null || true
		sleep 1
	fi
	rm -f "$PID_FILE"
	log "stopped"
}

# ---------------------------------------------------------------- configure

configure_layout() {
	local node_id show current current_version
	# `node id -q` prints "<hex id>@<rpc_public_addr>"; layout wants the hex id.
	node_id="$(g node id -q 2>/dev/null)" || die "cannot read garage node id"
	node_id="${node_id%%@*}"
	[[ "$node_id" =~ ^[0-9a-f]{64}$ ]] || die "unexpected node id: $node_id"

	show="$(retry g layout show)" || die "garage layout show failed"
	current_version="$(sed -n 's/^Current cluster layout version: \([0-9][0-9]*\)$/\1/p' <<<"$show")"
	[[ -n "$current_version" ]] || die "cannot parse layout version from 'garage layout show':"$'\n'"$show"

	# The table in the "current layout" section lists 16-char id prefixes.
	current="$(sed -n '/^==== CURRENT CLUSTER LAYOUT ====/,/^Current cluster layout version:/p' <<<"$show")"
	if grep -q "^${node_id:0:16}" <<<"$current"; then
		log "layout already has this node (version $current_version)"
		return
	fi

	log "assigning node ${node_id:0:16} and applying layout version $((current_version + 1))"
	retry g layout assign -z dc1 -c 1G "$node_id" >/dev/null || die "garage layout assign failed"
	retry g layout apply --version "$((current_version + 1))" >/dev/null || die "garage layout apply failed"
}

# True if a column of `garage <kind> list` output equals $2 exactly.
listed() {
	local kind="$1" name="$2" out
	out="$(retry g "$kind" list)" || die "garage $kind list failed"
	awk -v n="$name" 'NR > 1 { for (i = 1; i <= NF; i++) if ($i == n) found = 1 } END { exit !found }' <<<"$out"
}

configure_bucket_and_key() {
	if listed bucket "$BUCKET"; then
		log "bucket $BUCKET exists"
	else
		log "creating bucket $BUCKET"
		retry g bucket create "$BUCKET" >/dev/null || die "garage bucket create failed"
	fi

	if listed key "$KEY_NAME"; then
		log "key $KEY_NAME exists"
	else
		log "creating key $KEY_NAME"
		retry g key create "$KEY_NAME" >/dev/null || die "garage key create failed"
	fi

	# Granting again is harmless, and repairs a half-finished earlier run.
	retry g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >/dev/null ||
		die "garage bucket allow failed"
}

write_env() {
	local key_id secret
	key_id="$(retry g key info --key-id "$KEY_NAME")" || die "garage key info failed"
	secret="$(retry g key info --secret-key "$KEY_NAME")" || die "garage key info --secret-key failed"
	[[ "$key_id" =~ ^GK[0-9a-f]+$ ]] || die "unexpected access key id: $key_id"
	[[ "$secret" =~ ^[0-9a-f]{64}$ ]] || die "unexpected secret key format (got ${#secret} chars)"

	(
		umask 077
		cat >"$ENV_FILE.tmp" <<EOF
# Garage test server from scripts/garage.sh (state: $STATE_DIR)
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=$REGION
export AWS_REGION=$REGION
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ALLOW_HTTP=true
export HOKAN_TEST_S3_BUCKET=$BUCKET
export HOKAN_TEST_S3_URL=s3://$BUCKET
EOF
	)
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands

cmd_start() {
	mkdir -p "$STATE_DIR"
	find_or_install_garage
	log "using $GARAGE ($("$GARAGE" --version))"

	if server_alive && [[ -f "$CONFIG" ]]; then
		# Use the ports of the running server, not the (maybe changed) env vars.
		S3_PORT="$(toml_get api_bind_addr s3_api)"
		S3_PORT="${S3_PORT##*:}"
		if port_open "$S3_PORT"; then
			log "reusing running garage (pid $(cat "$PID_FILE"))"
			if [[ ! -f "$ENV_FILE" ]]; then
				configure_layout
				configure_bucket_and_key
				write_env
			fi
			cat "$ENV_FILE"
			return
		fi
		die "garage pid $(cat "$PID_FILE") is alive but port $S3_PORT does not answer; run '$0 stop $STATE_DIR' first"
	fi
	rm -f "$PID_FILE"

	write_config
	start_server
	configure_layout
	configure_bucket_and_key
	write_env
	log "ready; env file: $ENV_FILE"
	cat "$ENV_FILE"
}

cmd_env() {
	[[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist; run '$0 start $STATE_DIR' first"
	cat "$ENV_FILE"
}

main() {
	[[ $# -ge 1 && $# -le 2 ]] || usage
	local cmd="$1"
	STATE_DIR="${2:-$REPO_ROOT/target/garage}"
	# Absolute path: it ends up in garage.toml, which the server reads from any cwd.
	[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
	STATE_DIR="${STATE_DIR%/}"
	CONFIG="$STATE_DIR/garage.toml"
	PID_FILE="$STATE_DIR/garage.pid"
	LOG_FILE="$STATE_DIR/garage.log"
	ENV_FILE="$STATE_DIR/env"

	case "$cmd" in
	start) cmd_start ;;
	stop) stop_server ;;
	env) cmd_env ;;
	*) usage ;;
	esac
}

main "$@"
