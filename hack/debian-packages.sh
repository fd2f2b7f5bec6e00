#!/usr/bin/env bash
# Installs Debian packages the harness needs when their command is missing.
#
#   hack/debian-packages.sh COMMAND=PACKAGE…      e.g. musl-gcc=musl-tools buildah=buildah
set -euo pipefail
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "debian-packages: run as root or install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
command -v apt-get >/dev/null || { echo "debian-packages: no apt-get; install: ${missing[*]}" >&2; exit 1; }
echo "debian-packages: installing ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
