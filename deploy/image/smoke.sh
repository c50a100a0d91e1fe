#!/usr/bin/env bash
# Runs hokan inside the image build.sh made, as a cluster would: as the image's own non-root user,
# `hokan version`, then a backup of a directory into a local repository in the container and its
# restore, byte for byte; then, as root explicitly, what only root may do (etcd Jobs read root-owned
# client certificates): the default user is refused such a file, root backs it up and restores it.
# With HOKAN_TEST_SERVER, the operator in the image reconciles a Repository against the test API
# server. Also checks the image's layout: one layer, user 65532, HOME, the binaries root-owned in
# /usr/local/bin. Run as root, with the storage root build.sh used.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/image/smoke.sh [--image NAME] [--storage-root DIR]

  --image NAME         the image (default: the one WORK_DIR/figures names, from build.sh)
  --oci-archive PATH   check that this archive holds the image (default: the one
                       WORK_DIR/figures names, when --image is not given)
  --storage-root DIR   buildah's storage root, as given to build.sh
  --work-dir DIR       build.sh's work directory (default: target/image)
EOF
}

cd "$(dirname "$0")/../.."
image=
archive=
storage_root=
work=target/image
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image=$2; shift 2 ;;
        --oci-archive) archive=$2; shift 2 ;;
        --storage-root) storage_root=$2; shift 2 ;;
        --work-dir) work=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "smoke.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

fail() { echo "smoke.sh: FAILED: $*" >&2; exit 1; }
say() { echo "smoke.sh: $*"; }

if [ -z "$image" ]; then
    [ -f "$work/figures" ] || fail "no --image given and no $work/figures: run deploy/image/build.sh first"
    image=$(sed -n 's/^image=//p' "$work/figures")
    archive=${archive:-$(sed -n 's/^oci_archive=//p' "$work/figures")}
fi
B=(buildah --storage-driver vfs)
if [ -n "$storage_root" ]; then
    B+=(--root "$storage_root" --runroot "$storage_root/run")
fi

start=$(date +%s.%N)
tmp=$(mktemp -d)
ctr=
cleanup() {
    if [ -n "$ctr" ]; then "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

ctr=$("${B[@]}" from --pull=never --quiet "$image")
run() { "${B[@]}" run --isolation chroot "$@"; }
mnt=$("${B[@]}" mount "$ctr")

# The layout the Containerfile describes (build.sh builds that file, on its own base): the
# Containerfile says it, and the image has it.
cf=deploy/image/Containerfile
for line in 'USER 65532:65532' 'ENV HOME=/home/hokan' 'WORKDIR /home/hokan' 'ENTRYPOINT ["/usr/local/bin/hokan"]' 'COPY bin/ /usr/local/bin/'; do
    grep -qxF "$line" "$cf" || fail "$cf no longer says '$line': change this check and build.sh's documentation with it"
done
cfg() { "${B[@]}" inspect --type image --format "$1" "$image"; }
[ "$(cfg '{{len .OCIv1.RootFS.DiffIDs}}')" = 1 ] || fail "$image has more than one layer"
[ "$(cfg '{{.OCIv1.Config.User}}')" = 65532:65532 ] || fail "the default user is '$(cfg '{{.OCIv1.Config.User}}')', not 65532:65532"
[ "$(cfg '{{.OCIv1.Config.WorkingDir}}')" = /home/hokan ] || fail "the working directory is not /home/hokan"
cfg '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' | grep -qx 'HOME=/home/hokan' || fail "HOME is not /home/hokan in the image's environment"
[ "$(cfg '{{index .OCIv1.Config.Entrypoint 0}}')" = /usr/local/bin/hokan ] || fail "the entry point is not /usr/local/bin/hokan"
grep -qx 'hokan:x:65532:65532:hokan:/home/hokan:/usr/sbin/nologin' "$mnt/etc/passwd" || fail "no hokan user 65532 in /etc/passwd"
[ "$(stat -c '%u:%g %a' "$mnt/home/hokan")" = "65532:0 775" ] || fail "/home/hokan is $(stat -c '%u:%g %a' "$mnt/home/hokan"), not 65532:0 775"
for f in "$mnt"/usr/local/bin/*; do
    [ "$(stat -c '%u:%g %a' "$f")" = "0:0 755" ] || fail "$f is $(stat -c '%u:%g %a' "$f"), not root's 0:0 755"
done
[ -e "$mnt/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates in the image"
[ -e "$mnt/usr/share/zoneinfo/Europe/Berlin" ] || fail "no time zone data in the image"
say "layout: one layer, user 65532:65532, HOME=/home/hokan, $(cd "$mnt/usr/local/bin" && echo *) in /usr/local/bin"

# Every binary finds its libraries, in versions this base has (a glibc older than the build
# machine's shows here as "version `GLIBC_2.xx' not found").
for f in "$mnt"/usr/local/bin/*; do
    libs=$(run "$ctr" -- ldd "/usr/local/bin/${f##*/}" 2>&1) || fail "ldd /usr/local/bin/${f##*/}: $libs"
    if echo "$libs" | grep -q 'not found'; then fail "/usr/local/bin/${f##*/} cannot run on this base: $libs"; fi
done

# The OCI archive holds this image: its index names it, its blobs match their digests, and its
# one layer, unpacked, is the layer in the store (the image's DiffID).
if [ -n "$archive" ]; then
    blob() { tar -xOf "$archive" "blobs/sha256/$1"; }
    digest_ok() { [ "$(blob "$1" | sha256sum | cut -d' ' -f1)" = "$1" ] || fail "$archive: blob $1 does not match its digest"; }
    index=$(tar -xOf "$archive" index.json) || fail "$archive has no index.json: not an OCI archive"
    echo "$index" | grep -qF "\"org.opencontainers.image.ref.name\":\"$image\"" || fail "$archive does not name $image: $index"
    manifest_digest=$(echo "$index" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d: -f3 | tr -d '"')
    digest_ok "$manifest_digest"
    layers=$(blob "$manifest_digest" | grep -o '"layers":\[.*\]')
    [ "$(echo "$layers" | grep -o '"digest"' | wc -l)" = 1 ] || fail "$archive's image has more than one layer: $layers"
    layer_digest=$(echo "$layers" | grep -o 'sha256:[0-9a-f]*' | cut -d: -f2)
    digest_ok "$layer_digest"
    case "$layers" in *tar+gzip*) unpack=(gzip -dc) ;; *tar+zstd*) unpack=(zstd -dc) ;; *) unpack=(cat) ;; esac
    diff_id=sha256:$(blob "$layer_digest" | "${unpack[@]}" | sha256sum | cut -d' ' -f1)
    [ "$diff_id" = "$(cfg '{{index .OCIv1.RootFS.DiffIDs 0}}')" ] || fail "$archive's layer ($diff_id) is not the image's"
    say "OCI archive $archive: $image, one layer, equal to the store's"
fi

# 1. hokan version, as the image's user.
[ "$(run "$ctr" -- id -u)" = 65532 ] || fail "commands do not run as 65532 by default"
out=$(run "$ctr" -- hokan version)
version=$(cfg '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}')
echo "$out" | head -1 | grep -qx "hokan $version" || fail "hokan version printed '$out', expected 'hokan $version' first"
say "hokan version: $(echo "$out" | head -1)"

# 2. A backup into a local repository and its restore, as the non-root user; the restored bytes
# are compared on the host, through the container's mount.
mkdir -p "$tmp/data/nested/deeper"
head -c 3000000 /dev/urandom > "$tmp/data/random.bin"
head -c 200000 /dev/urandom > "$tmp/data/nested/deeper/small.bin"
printf 'hokan in a container\n' > "$tmp/data/nested/hello.txt"
: > "$tmp/data/empty"
ln -s nested/hello.txt "$tmp/data/link"
"${B[@]}" copy --quiet --chown 65532:65532 "$ctr" "$tmp/data" /home/hokan/data >/dev/null
pw=(--env HOKAN_PASSWORD=smoke-test-password)
run "${pw[@]}" "$ctr" -- hokan -q -r /home/hokan/repo init >/dev/null
run "${pw[@]}" "$ctr" -- hokan -q -r /home/hokan/repo backup /home/hokan/data
run "${pw[@]}" "$ctr" -- hokan -q -r /home/hokan/repo restore latest --target /home/hokan/restored
restored=$(find "$mnt/home/hokan/restored" -type d -name data -path '*/home/hokan/data' | head -1)
[ -n "$restored" ] || fail "the restore wrote no home/hokan/data under /home/hokan/restored"
diff -r --no-dereference "$tmp/data" "$restored" || fail "the restored files differ from the backed up ones"
[ "$(readlink "$restored/link")" = nested/hello.txt ] || fail "the symbolic link was not restored"
owners=$(find "$mnt/home/hokan/repo" "$mnt/home/hokan/restored" ! -uid 65532 | head -3)
[ -z "$owners" ] || fail "files not owned by 65532 after the non-root run: $owners"
say "non-root backup and restore: $(find "$tmp/data" -type f | wc -l) files, $(find "$tmp/data" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }') bytes, equal"

# 3. Root explicitly: a root-only file (as etcd's client key on a control-plane node).
mkdir -p "$tmp/pki"
head -c 4096 /dev/urandom > "$tmp/pki/client.key"
chmod 0600 "$tmp/pki/client.key"
"${B[@]}" copy --quiet --chown 0:0 --chmod 0600 "$ctr" "$tmp/pki/client.key" /etc/hokan-smoke/pki/client.key >/dev/null
[ "$(stat -c '%u %a' "$mnt/etc/hokan-smoke/pki/client.key")" = "0 600" ] || fail "the test key is not root's with mode 600"
if run "${pw[@]}" "$ctr" -- hokan -q -r /home/hokan/repo backup /etc/hokan-smoke/pki >/dev/null 2>&1; then
    fail "the non-root user backed up a root-only file: the image does not run as non-root"
fi
run "${pw[@]}" --user 0:0 "$ctr" -- hokan -q -r /root/repo init >/dev/null
run "${pw[@]}" --user 0:0 "$ctr" -- hokan -q -r /root/repo backup /etc/hokan-smoke/pki
run "${pw[@]}" --user 0:0 "$ctr" -- hokan -q -r /root/repo restore latest --target /root/restored
cmp "$tmp/pki/client.key" "$mnt/root/restored/etc/hokan-smoke/pki/client.key" || fail "root's restore of the key differs"
say "as root (--user 0:0): the root-only key the default user is refused was backed up and restored, equal"

# 4. The operator in the image, as its Deployment runs it (user 65532), against an API server:
# the in-process test server on the host's loopback (chroot isolation keeps the host's network),
# when HOKAN_TEST_SERVER names its binary (cargo build -p hokan-k8s --features test-server
# --example test_server) and kubectl is here. It reconciles a Repository naming the repository
# of step 2: reachable, its snapshots counted as `hokan snapshots` counts them; then SIGTERM
# stops it cleanly.
if [ -n "${HOKAN_TEST_SERVER:-}" ]; then
    command -v kubectl >/dev/null || fail "HOKAN_TEST_SERVER is set but kubectl is missing"
    "$HOKAN_TEST_SERVER" "$tmp/kc" > "$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do [ -s "$tmp/kc" ] && break; sleep 0.1; done
    [ -s "$tmp/kc" ] || fail "the test server wrote no kubeconfig: $(cat "$tmp/server.log")"
    k() { KUBECONFIG="$tmp/kc" kubectl "$@"; }
    k apply -k deploy/crds >/dev/null
    k create namespace hokan-system >/dev/null
    k -n hokan-system create secret generic repo-password --from-literal=password=smoke-test-password >/dev/null
    printf '%s\n' 'apiVersion: hokan.dev/v1alpha1' 'kind: Repository' \
        'metadata: {name: main, namespace: hokan-system}' \
        'spec: {location: /home/hokan/repo, passwordSecretRef: {name: repo-password, key: password}}' \
        | k apply -f - >/dev/null
    "${B[@]}" copy --quiet --chown 65532:65532 "$ctr" "$tmp/kc" /home/hokan/kubeconfig >/dev/null
    run --env KUBECONFIG=/home/hokan/kubeconfig --env HOKAN_CACHE_DIR=/home/hokan/operator-cache "$ctr" -- \
        timeout -s TERM 20 hokan-operator run --listen 127.0.0.1:18093 --namespace hokan-system --identity smoke \
        > "$tmp/operator.log" 2>&1 &
    operator_pid=$!
    # The snapshots the repository holds (step 3's refused backup saved one too, with its error).
    count=$(run "${pw[@]}" "$ctr" -- hokan -r /home/hokan/repo snapshots --json \
        | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    seen=
    for _ in $(seq 150); do
        seen=$(k -n hokan-system get hrepo main -o jsonpath='{.status.reachable} {.status.snapshotCount}' 2>/dev/null || true)
        [ "$seen" = "true $count" ] && break
        sleep 0.1
    done
    wait "$operator_pid" || true
    kill "$server_pid" 2>/dev/null || true
    [ "$seen" = "true $count" ] || fail "the operator in the image did not report the repository reachable with its $count snapshots (status: '$seen'); its log: $(tail -5 "$tmp/operator.log")"
    grep -q '"stopped cleanly"' "$tmp/operator.log" || fail "the operator did not stop cleanly on SIGTERM: $(tail -5 "$tmp/operator.log")"
    say "hokan-operator in the image: the Repository reconciled (reachable, $count snapshots) against the test server, stopped cleanly on SIGTERM"
fi

say "passed in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
