#!/usr/bin/env bash
# Builds hokan's container image from Debian packages and the release binaries, with no container
# registry: mmdebstrap makes a root file system (variant essential, plus ca-certificates and
# tzdata), buildah builds deploy/image/Containerfile on it (its FROM replaced by that root file
# system), squashed to one layer, tagged localhost/hokan:<version>, and optionally exported as an
# OCI archive. Building the Containerfile itself is what keeps the two ways to build the image
# equal: only the base differs. Run as root (mmdebstrap's root mode, buildah's vfs store).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/image/build.sh [OPTIONS]

  --bin PATH           a binary for /usr/local/bin (repeatable); default: hokan and, when built,
                       hokan-operator from --target-dir
  --target-dir DIR     where the release binaries are (default: target/release)
  --version V          the image's tag (default: the version `hokan --version` prints, which is
                       also the image's org.opencontainers.image.version label in any case)
  --oci-archive PATH   also write the image to this OCI archive
  --suite SUITE        the Debian release of the base (default: this machine's, else bookworm);
                       the binaries need a glibc at least as new as the one they were built with
  --mirror MIRROR      mmdebstrap's mirror: a URL or a sources file (default: this machine's
                       /etc/apt/sources.list.d/debian.sources, else deb.debian.org)
  --variant V          the base: essential (the default: Debian's Essential packages plus
                       ca-certificates and tzdata, no apt), or minbase (Debian's slim images:
                       with apt, so the Containerfile installs the two packages itself, as it
                       does on debian:bookworm-slim; a check of that path, bigger)
  --storage-root DIR   buildah's storage root (default: buildah's own); the driver is vfs
  --work-dir DIR       build context, .deb cache and figures (default: target/image)
  --keep-debug-info    copy the binaries as built; by default the image's copies lose their DWARF
                       debug information (the release profile's line tables: three quarters of
                       hokan's size) and keep their symbol table (backtraces name functions,
                       without file and line)

Prints the figures (seconds per step, sizes in bytes) and writes them to WORK_DIR/figures.
EOF
}

cd "$(dirname "$0")/../.."
root_dir=$PWD

bins=()
target_dir=target/release
version=
archive=
suite=
mirror=
storage_root=
work=target/image
strip_debug=1
variant=essential
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bins+=("$2"); shift 2 ;;
        --target-dir) target_dir=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        --oci-archive) archive=$2; shift 2 ;;
        --suite) suite=$2; shift 2 ;;
        --mirror) mirror=$2; shift 2 ;;
        --storage-root) storage_root=$2; shift 2 ;;
        --work-dir) work=$2; shift 2 ;;
        --keep-debug-info) strip_debug=; shift ;;
        --variant) variant=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

fail() { echo "build.sh: $*" >&2; exit 1; }

case "$variant" in
    essential) include=("--include=ca-certificates,tzdata") ;;
    minbase) include=() ;;
    *) fail "--variant is essential or minbase, not '$variant'" ;;
esac

[ "$(id -u)" = 0 ] || fail "run as root: mmdebstrap makes the root file system in root mode and buildah's vfs store needs it (or run it inside \`buildah unshare\`)"
tools=(mmdebstrap buildah)
if [ -n "$strip_debug" ]; then tools+=(strip); fi
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || fail "$tool is not installed: apt-get install -y mmdebstrap buildah binutils"
done

# The binaries: those given, else the ones built in the target directory. hokan is required;
# hokan-operator goes in when it exists.
if [ ${#bins[@]} -eq 0 ]; then
    [ -x "$target_dir/hokan" ] || fail "no hokan binary at $target_dir/hokan: build it with \`cargo build --release --locked -p hokan-cli\` (and -p hokan-operator), or name it with --bin PATH"
    bins=("$target_dir/hokan")
    [ -x "$target_dir/hokan-operator" ] && bins+=("$target_dir/hokan-operator")
fi
have_hokan=
for b in "${bins[@]}"; do
    if [ ! -f "$b" ] || [ ! -x "$b" ]; then fail "$b is not an executable file"; fi
    [ "$(basename "$b")" = hokan ] && have_hokan=1
done
[ -n "$have_hokan" ] || fail "none of the binaries given (${bins[*]}) is named hokan: the image needs /usr/local/bin/hokan; add --bin PATH/TO/hokan"
hokan_bin=
for b in "${bins[@]}"; do [ "$(basename "$b")" = hokan ] && hokan_bin=$b; done

hokan_version=$("$hokan_bin" --version | awk '{print $2}')
[ -n "$hokan_version" ] || fail "$hokan_bin --version printed no version: is it hokan?"
version=${version:-$hokan_version}
image=localhost/hokan:$version
base=localhost/hokan-base:$version

# The base's release: this machine's, so that the glibc the binaries were linked against is there.
if [ -z "$suite" ]; then
    # shellcheck disable=SC1091
    suite=$( (. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}") || true)
    suite=${suite:-bookworm}
fi
if [ -z "$mirror" ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        mirror=/etc/apt/sources.list.d/debian.sources
    else
        mirror=http://deb.debian.org/debian
    fi
fi

B=(buildah --storage-driver vfs)
if [ -n "$storage_root" ]; then
    B+=(--root "$storage_root" --runroot "$storage_root/run")
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
ctx=$work/context
debs=$work/debs
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$debs"
for b in "${bins[@]}"; do
    install -m 0755 "$b" "$ctx/bin/$(basename "$b")"
    if [ -n "$strip_debug" ]; then strip --strip-debug "$ctx/bin/$(basename "$b")"; fi
done

ctr=
cleanup() {
    if [ -n "$ctr" ]; then "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
    "${B[@]}" rmi "$base" >/dev/null 2>&1 || true
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "build.sh: $image from Debian $suite ($variant, $mirror) with ${bins[*]}"

# 1. The root file system, written straight into an empty working container (no tarball, no
# extra copy). Downloaded packages are kept in $debs between builds (mmdebstrap's documented
# cache hooks). Documentation, manuals and translations are left out, as Debian's slim images do.
t0=$(now)
ctr=$("${B[@]}" from scratch)
mnt=$("${B[@]}" mount "$ctr")
# shellcheck disable=SC2016 # "$1" is the hook's argument, expanded by mmdebstrap's shell
mmdebstrap --variant="$variant" "${include[@]}" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --skip=essential/unlink --skip=download/empty \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/partial' \
    --setup-hook="sync-in '$debs' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$debs'" \
    --quiet "$suite" "$mnt" "$mirror"
rm -f "$debs/lock"
rm -rf "$debs/partial"
"${B[@]}" umount "$ctr" >/dev/null
t1=$(now)

# 2. The base as an image (buildah build takes its FROM from an image), then the Containerfile
# on it, squashed into the one layer, and the base dropped: vfs stores every layer as a full copy.
"${B[@]}" commit --rm --quiet "$ctr" "$base" >/dev/null
ctr=
# An image of the same name is being replaced: drop it, or vfs keeps its full copy untagged.
"${B[@]}" rmi "$image" >/dev/null 2>&1 || true
"${B[@]}" build --quiet --isolation chroot --squash --pull=never \
    --from "$base" --build-arg "VERSION=$hokan_version" \
    -f "$root_dir/deploy/image/Containerfile" -t "$image" "$ctx" >/dev/null
"${B[@]}" rmi "$base" >/dev/null
t2=$(now)

# 3. The OCI archive.
archive_bytes=
if [ -n "$archive" ]; then
    mkdir -p "$(dirname "$archive")"
    rm -f "$archive"
    "${B[@]}" push --quiet "$image" "oci-archive:$archive:$image"
    archive_bytes=$(stat -c %s "$archive")
fi
t3=$(now)

layers=$("${B[@]}" inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$image")
[ "$layers" = 1 ] || fail "$image has $layers layers, not one: buildah build --squash did not squash the base"
# The layer as the uncompressed tar the store's manifest records.
image_bytes=$("${B[@]}" inspect --type image --format '{{.Manifest}}' "$image" |
    grep -o '"layers":\[{[^}]*}' | grep -o '"size":[0-9]*' | cut -d: -f2)

figures=$work/figures
{
    echo "image=$image"
    echo "binaries=${bins[*]}"
    for f in "$ctx"/bin/*; do echo "bin_${f##*/}_bytes=$(stat -c %s "$f")"; done
    echo "rootfs_seconds=$(secs "$t0" "$t1")"
    echo "commit_seconds=$(secs "$t1" "$t2")"
    if [ -n "$archive" ]; then echo "export_seconds=$(secs "$t2" "$t3")"; fi
    echo "total_seconds=$(secs "$t0" "$t3")"
    echo "layers=$layers"
    echo "image_bytes=$image_bytes"
    if [ -n "$archive" ]; then echo "oci_archive=$archive"; echo "oci_archive_bytes=$archive_bytes"; fi
} > "$figures"
sed 's/^/build.sh: /' "$figures"
