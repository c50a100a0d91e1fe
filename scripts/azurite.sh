#!/usr/bin/env bash
# Run Azurite, Microsoft's Azure Blob Storage emulator, on loopback for
# hokan's tests (az:// locations).
#
# Usage:
#   scripts/azurite.sh start [STATE_DIR]   install azurite if needed, start it, create the
#                                          test container, write STATE_DIR/env and print it
#   scripts/azurite.sh stop  [STATE_DIR]   stop the server (data is kept)
#   scripts/azurite.sh env   [STATE_DIR]   print the env file (source it: `. STATE_DIR/env`)
#
# STATE_DIR defaults to <repo>/target/azurite. Knobs: AZURITE_PORT (10000),
# AZURITE_START_TIMEOUT (60), HOKAN_TOOLS_DIR (where azurite is installed).
#
# The env file sets what object_store's Azure client reads (the emulator's
# well-known account and key) and, for the error tests, shared access
# signatures that are read-only, lack delete, or have expired: Azurite checks
# a signature's permissions and expiry as Azure does.
set -euo pipefail

SCRIPT_NAME=azurite.sh
# shellcheck source=lib/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

# 3.37 asks for Node 22 in its metadata but runs on Debian's Node 20.
readonly AZURITE_SPEC="azurite@3.37.0"
readonly ACCOUNT="devstoreaccount1"
# The emulator's published development key (not a secret).
readonly ACCOUNT_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
readonly CONTAINER="hokan-test"
readonly API_VERSION="2021-08-06"
PORT="${AZURITE_PORT:-10000}"
START_TIMEOUT="${AZURITE_START_TIMEOUT:-60}"

usage() {
	echo "usage: $0 {start|stop|env} [STATE_DIR]   (STATE_DIR defaults to $REPO_ROOT/target/azurite)" >&2
	exit 2
}

# HMAC-SHA256 of stdin with the base64 account key, base64-encoded.
sign() {
	local hexkey
	hexkey="$(printf '%s' "$ACCOUNT_KEY" | base64 -d | od -An -tx1 -v | tr -d ' \n')"
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0
}

# Creates the test container with a Shared Key signed request (no SDK
# needed); an existing one is fine.
create_container() {
	local name="$1" date sig status
	date="$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')"
	# String to sign for Shared Key: 11 empty standard headers for a bodiless
	# PUT, then the x-ms headers, then the resource (the emulator's paths
	# repeat the account name).
	sig="$(printf 'PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n/%s/%s/%s\nrestype:container' \
		"$date" "$API_VERSION" "$ACCOUNT" "$ACCOUNT" "$name" | sign)"
	status="$(curl -s -o "$STATE_DIR/create-container.out" -w '%{http_code}' -X PUT \
		-H "x-ms-date: $date" -H "x-ms-version: $API_VERSION" -H "Content-Length: 0" \
		-H "Authorization: SharedKey $ACCOUNT:$sig" \
		"http://127.0.0.1:$PORT/$ACCOUNT/$name?restype=container")" || die "curl could not reach azurite"
	case "$status" in
	201) log "created container $name" ;;
	409) log "container $name exists" ;;
	*) die "creating container $name answered HTTP $status: $(cat "$STATE_DIR/create-container.out")" ;;
	esac
}

# An account shared access signature (query string) with permissions $1,
# valid from $2 to $3 (UTC, ISO 8601 seconds).
account_sas() {
	local perms="$1" start="$2" expiry="$3" sig
	sig="$(printf '%s\n%s\nb\nsco\n%s\n%s\n\nhttp,https\n%s\n\n' \
		"$ACCOUNT" "$perms" "$start" "$expiry" "$API_VERSION" | sign)"
	sig="$(printf '%s' "$sig" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')"
	printf 'sv=%s&ss=b&srt=sco&sp=%s&st=%s&se=%s&spr=http,https&sig=%s' \
		"$API_VERSION" "$perms" "$start" "$expiry" "$sig"
}

write_env() {
	local start long_ago yesterday expiry
	start="$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"
	expiry="$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
	long_ago="$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%SZ)"
	yesterday="$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)"
	write_env_file <<EOF
# Azurite from scripts/azurite.sh (state: $STATE_DIR)
export AZURE_STORAGE_USE_EMULATOR=true
export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$PORT
export AZURE_STORAGE_ACCOUNT_NAME=$ACCOUNT
export AZURE_STORAGE_ACCOUNT_KEY='$ACCOUNT_KEY'
export HOKAN_TEST_AZURE_URL=az://$CONTAINER
# Shared access signatures for the error tests (AZURE_STORAGE_SAS_KEY takes one).
export HOKAN_TEST_AZURE_SAS_READ_ONLY='$(account_sas rl "$start" "$expiry")'
export HOKAN_TEST_AZURE_SAS_NO_DELETE='$(account_sas racwl "$start" "$expiry")'
export HOKAN_TEST_AZURE_SAS_EXPIRED='$(account_sas racwdl "$long_ago" "$yesterday")'
EOF
}

cmd_start() {
	local bin="$TOOLS_DIR/${AZURITE_SPEC//@/-}"
	if server_alive azurite-blob && port_open "$PORT"; then
		log "reusing running azurite (pid $(cat "$PID_FILE"))"
	else
		command -v curl >/dev/null 2>&1 || die "curl is needed (Debian: apt-get install curl)"
		command -v openssl >/dev/null 2>&1 || die "openssl is needed (Debian: apt-get install openssl)"
		ensure_npm "$bin" "$AZURITE_SPEC"
		mkdir -p "$STATE_DIR/data"
		# --disableTelemetry: otherwise it reports usage to Microsoft (and
		# waits on a network this machine does not have). --skipApiVersionCheck:
		# object_store may speak a newer API version than this release knows.
		start_daemon "$PORT" "$START_TIMEOUT" "$bin/node_modules/.bin/azurite-blob" \
			--disableTelemetry --skipApiVersionCheck --silent \
			--blobHost 127.0.0.1 --blobPort "$PORT" --location "$STATE_DIR/data"
	fi
	create_container "$CONTAINER"
	write_env
	cat "$ENV_FILE"
}

main() {
	[[ $# -ge 1 && $# -le 2 ]] || usage
	set_state_dir "${2:-}" "$REPO_ROOT/target/azurite"
	case "$1" in
	start) cmd_start ;;
	stop) stop_daemon azurite-blob ;;
	env)
		[[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist; run '$0 start' first"
		cat "$ENV_FILE"
		;;
	*) usage ;;
	esac
}

main "$@"
