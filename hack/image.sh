#!/usr/bin/env bash
# Builds Swell's image with buildah (daemonless) without pulling anything: the static
# binary is built on this machine (hack/build-static.sh) and the Dockerfile's runtime stage
# takes it from a staged context (ARTIFACTS=prebuilt). Then checks what the image is:
# user 65532, entrypoint /swell, only the binary, CA bundle, passwd and group, and the
# binary inside it runs.
#
#   hack/image.sh [--profile release|dev] [TAG]       default TAG: localhost/swell:dev
#   hack/image.sh --binary FILE [TAG]                  an already built static binary
#                                                      (make test: the one its tests ran)
#
# Needs buildah and musl-tools (Debian: apt-get install buildah musl-tools).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
profile=release binary=""
if [ "${1:-}" = --profile ]; then profile="${2:?--profile needs release or dev}"; shift 2; fi
if [ "${1:-}" = --binary ]; then binary="${2:?--binary needs a FILE}"; shift 2; fi
tag="${1:-localhost/swell:dev}"
die() { printf 'image: %s\n' "$*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"
# vfs works without fuse-overlayfs or a privileged mount, e.g. inside a container.
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/swell-image.XXXXXX")
mnt_ctr=""
cleanup() {
  [ -z "$mnt_ctr" ] || buildah rm "$mnt_ctr" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
if [ -n "$binary" ]; then
  "$here/build-static.sh" --verify "$binary"
  mkdir -p "$ctx/static" && cp "$binary" "$ctx/static/swell"
else
  "$here/build-static.sh" --profile "$profile" "$ctx/static/swell"
fi
"$here/image-rootfs.sh" "$ctx/static/rootfs"
start=$SECONDS
buildah build --quiet --layers=false --build-arg ARTIFACTS=prebuilt -f "$root/Dockerfile" -t "$tag" "$ctx" >/dev/null

config=$(buildah inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}' "$tag")
[ "$config" = '65532:65532 [/swell] [operator]' ] || die "unexpected image config: $config"
mnt_ctr=$(buildah from "$tag")
rootfs=$(buildah mount "$mnt_ctr")
files=$(cd "$rootfs" && find . -type f | sort | tr '\n' ' ')
[ "$files" = "./etc/group ./etc/passwd ./etc/ssl/certs/ca-certificates.crt ./swell " ] ||
  die "unexpected files in the image: $files"
version=$("$rootfs/swell" version) || die "the image's /swell does not run"
buildah umount "$mnt_ctr" >/dev/null
printf 'image: %s (%s; user 65532; files: %s) built in %ss\n' "$tag" "$version" "$files" $((SECONDS - start)) >&2
