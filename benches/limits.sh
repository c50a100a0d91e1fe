#!/usr/bin/env bash
# The machine's limits on the very inputs the stage benches use: zstd's own
# benchmark at level 3 with 1 MiB blocks (the average chunk size's order),
# and OpenSSL's ChaCha20-Poly1305. Run beside `cargo bench --bench stages`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v zstd >/dev/null || { echo "zstd is not installed (apt-get install zstd)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet --example sample
for kind in random text zeros; do
    target/release/examples/sample "$kind" $((32 << 20)) 1 > "$dir/$kind.bin"
    printf 'zstd -b3 -B1MiB %-6s ' "$kind"
    zstd -b3 -i3 -B1MiB "$dir/$kind.bin" 2>&1 | tr '\r' '\n' | grep -a "$kind.bin" | tail -1 | sed 's/.*: *//'
done
echo "openssl speed -evp chacha20-poly1305 (16 KiB blocks, 1000s of bytes/s):"
openssl speed -evp chacha20-poly1305 -seconds 2 2>/dev/null | tail -1
