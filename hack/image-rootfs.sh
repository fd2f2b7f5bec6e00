#!/usr/bin/env bash
# The image's filesystem besides the binary: the CA bundle (AWS and other HTTPS upstreams)
# and passwd/group entries so the non-root user 65532 has a name.
#
#   hack/image-rootfs.sh DIR
set -euo pipefail
dir="${1:?usage: image-rootfs.sh DIR}"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || { echo "image-rootfs: $ca is missing (Debian: apt-get install ca-certificates)" >&2; exit 1; }
mkdir -p "$dir/etc/ssl/certs"
cp "$ca" "$dir/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
