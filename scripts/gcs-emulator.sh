#!/usr/bin/env bash
# Run a Google Cloud Storage emulator (PyPI's gcp-storage-emulator) on
# loopback for hokan's tests (gs:// locations).
#
# Usage:
#   scripts/gcs-emulator.sh start [STATE_DIR]   install the emulator if needed, start it with
#                                               the test bucket, write STATE_DIR/env and print it
#   scripts/gcs-emulator.sh stop  [STATE_DIR]   stop the server (data is kept)
#   scripts/gcs-emulator.sh env   [STATE_DIR]   print the env file (source it: `. STATE_DIR/env`)
#
# STATE_DIR defaults to <repo>/target/gcs-emulator. Knobs: GCS_EMULATOR_PORT (9023),
# GCS_EMULATOR_START_TIMEOUT (60), HOKAN_TOOLS_DIR (where it is installed).
#
# object_store's GCS client reaches an emulator through a service-account
# file that names the base URL and turns OAuth off; the env file points
# GOOGLE_SERVICE_ACCOUNT at one. The emulator checks no credentials at all.
set -euo pipefail

SCRIPT_NAME=gcs-emulator.sh
# shellcheck source=lib/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

readonly EMULATOR_SPEC="gcp-storage-emulator==2026.7.19"
readonly BUCKET="hokan-test"
PORT="${GCS_EMULATOR_PORT:-9023}"
START_TIMEOUT="${GCS_EMULATOR_START_TIMEOUT:-60}"

usage() {
	echo "usage: $0 {start|stop|env} [STATE_DIR]   (STATE_DIR defaults to $REPO_ROOT/target/gcs-emulator)" >&2
	exit 2
}

# The bucket answers (the emulator creates it at start).
bucket_ready() {
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/storage/v1/b/$BUCKET"
}

cmd_start() {
	local venv="$TOOLS_DIR/${EMULATOR_SPEC//==/-}"
	if server_alive gcp-storage-emulator && port_open "$PORT"; then
		log "reusing running emulator (pid $(cat "$PID_FILE"))"
	else
		command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
		ensure_venv "$venv" "$EMULATOR_SPEC"
		mkdir -p "$STATE_DIR/data"
		READY_CHECK=bucket_ready start_daemon "$PORT" "$START_TIMEOUT" \
			"$venv/bin/gcp-storage-emulator" --data-dir "$STATE_DIR/data" start \
			--host 127.0.0.1 --port "$PORT" --default-bucket "$BUCKET" --quiet
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
	stop) stop_daemon gcp-storage-emulator ;;
	env)
		[[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist; run '$0 start' first"
		cat "$ENV_FILE"
		;;
	*) usage ;;
	esac
}

main "$@"
