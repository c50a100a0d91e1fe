#!/usr/bin/env bash
# Run moto's AWS server on loopback for what Garage lacks: S3 Object Lock,
# STS AssumeRoleWithWebIdentity (how OADP on AWS STS reaches S3), IAM
# permissions per operation, and buckets in other regions.
#
# Usage:
#   scripts/moto.sh start [STATE_DIR]   install moto if needed, start two servers, configure
#                                       them, write STATE_DIR/env and print it
#   scripts/moto.sh stop  [STATE_DIR]   stop both (moto keeps its state in memory: it is lost)
#   scripts/moto.sh env   [STATE_DIR]   print the env file (source it: `. STATE_DIR/env`)
#
# STATE_DIR defaults to <repo>/target/moto. Knobs: MOTO_PORT (5055), MOTO_IAM_PORT
# (5056), MOTO_START_TIMEOUT (60), MOTO_STS_REFRESH_SECONDS (2), HOKAN_TOOLS_DIR.
#
# Two servers, because moto checks credentials for the whole process or not
# at all: the open one (plain HTTP, any credentials, so the suite's shared
# AWS_* variables work) serves the object-locked bucket; the IAM one enforces
# signatures and policies, and speaks HTTPS with a certificate from a CA
# made here, because object_store sends STS requests over HTTPS only.
# Clients trust that CA through SSL_CERT_FILE=$STATE_DIR/ca.pem.
set -euo pipefail

SCRIPT_NAME=moto.sh
# shellcheck source=lib/servers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

readonly MOTO_SPEC="moto[server]==5.2.1"
PORT="${MOTO_PORT:-5055}"
IAM_PORT="${MOTO_IAM_PORT:-5056}"
START_TIMEOUT="${MOTO_START_TIMEOUT:-60}"
STS_REFRESH_SECONDS="${MOTO_STS_REFRESH_SECONDS:-2}"

usage() {
	echo "usage: $0 {start|stop|env} [STATE_DIR]   (STATE_DIR defaults to $REPO_ROOT/target/moto)" >&2
	exit 2
}

# A CA and a certificate for 127.0.0.1/localhost signed by it (rustls takes
# no self-signed leaf as its own anchor).
make_certificates() {
	[[ -s "$STATE_DIR/server.pem" && -s "$STATE_DIR/ca.pem" ]] && return 0
	command -v openssl >/dev/null 2>&1 || die "openssl is needed (Debian: apt-get install openssl)"
	log "making a test CA and server certificate"
	(
		cd "$STATE_DIR"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hokan test CA" \
			-keyout ca.key -out ca.pem 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
			-keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile server.ext -out server.pem 2>/dev/null
	) || die "openssl could not make the test certificates"
}

cmd_start() {
	local venv="$TOOLS_DIR/moto-server-5.2.1" open_pid="$STATE_DIR/open.pid" iam_pid="$STATE_DIR/iam.pid"
	if PID_FILE="$open_pid" server_alive moto-server.py && PID_FILE="$iam_pid" server_alive moto-server.py &&
		port_open "$PORT" && port_open "$IAM_PORT" && [[ -s "$ENV_FILE" ]]; then
		log "reusing running moto servers"
		cat "$ENV_FILE"
		return
	fi
	# moto keeps its state in memory: a half-started pair is restarted whole.
	PID_FILE="$open_pid" stop_daemon moto-server.py
	PID_FILE="$iam_pid" stop_daemon moto-server.py
	ensure_venv "$venv" "$MOTO_SPEC"
	make_certificates
	# moto-server.py is moto's own server with four corrections towards AWS (see it).
	local launcher
	launcher="$(dirname "${BASH_SOURCE[0]}")/moto-server.py"
	PID_FILE="$open_pid" LOG_FILE="$STATE_DIR/open.log" start_daemon "$PORT" "$START_TIMEOUT" \
		"$venv/bin/python" "$launcher" -H 127.0.0.1 -p "$PORT"
	# Credentials from its STS live just over object_store's five-minute
	# refresh margin, so they are refreshed every STS_REFRESH_SECONDS.
	HOKAN_MOTO_STS_DURATION_SECONDS=$((300 + STS_REFRESH_SECONDS)) \
		PID_FILE="$iam_pid" LOG_FILE="$STATE_DIR/iam.log" start_daemon "$IAM_PORT" "$START_TIMEOUT" \
		"$venv/bin/python" "$launcher" -H 127.0.0.1 -p "$IAM_PORT" \
		--ssl-cert "$STATE_DIR/server.pem" --ssl-key "$STATE_DIR/server.key"
	local exports
	exports="$("$venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/moto-setup.py" \
		"http://127.0.0.1:$PORT" "https://127.0.0.1:$IAM_PORT" "$STATE_DIR/ca.pem")" ||
		die "configuring the moto servers failed (logs: $STATE_DIR/open.log, $STATE_DIR/iam.log)"
	write_env_file <<ENV
# moto from scripts/moto.sh (state: $STATE_DIR)
# The open server: any credentials; a bucket with Object Lock default retention.
export HOKAN_TEST_MOTO_URL=s3:http://127.0.0.1:$PORT/hokan-lock
# A bucket in eu-west-1, for the region test.
export HOKAN_TEST_MOTO_EU_URL=s3:http://127.0.0.1:$PORT/hokan-eu
# The IAM server: HTTPS (trust SSL_CERT_FILE below), credentials enforced.
export HOKAN_TEST_MOTO_IAM_URL=s3:https://127.0.0.1:$IAM_PORT/hokan-sts
export HOKAN_TEST_MOTO_STS_ENDPOINT=https://127.0.0.1:$IAM_PORT
export HOKAN_TEST_MOTO_CA=$STATE_DIR/ca.pem
# The IAM server's log: a test counts the credential refreshes in it.
export HOKAN_TEST_MOTO_IAM_LOG=$STATE_DIR/iam.log
export HOKAN_TEST_STS_REFRESH_SECONDS=$STS_REFRESH_SECONDS
$exports
ENV
	cat "$ENV_FILE"
}

cmd_stop() {
	PID_FILE="$STATE_DIR/open.pid" stop_daemon moto-server.py
	PID_FILE="$STATE_DIR/iam.pid" stop_daemon moto-server.py
	rm -f "$ENV_FILE" # its keys die with the servers' memory
}

main() {
	[[ $# -ge 1 && $# -le 2 ]] || usage
	set_state_dir "${2:-}" "$REPO_ROOT/target/moto"
	case "$1" in
	start) cmd_start ;;
	stop) cmd_stop ;;
	env)
		[[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist; run '$0 start' first"
		cat "$ENV_FILE"
		;;
	*) usage ;;
	esac
}

main "$@"
