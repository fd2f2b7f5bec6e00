#!/usr/bin/env bash
# Builds `swell` as one fully static executable (x86_64-unknown-linux-musl: musl's resolver
# and TLS roots need no shared library, so the binary runs in a `scratch` image), then
# checks it: an ELF without a PT_INTERP (no dynamic loader) that runs `swell version`.
#
#   hack/build-static.sh [--profile release|dev] [OUT]     default OUT: target/static/swell
#   hack/build-static.sh --verify FILE                      only the checks, on a binary built
#                                                           elsewhere (make test's own build)
#
# `make test` does not build here: its test build is already static (hack/lib/rust-build.sh)
# and the image takes that binary; images for a registry use release.
#
# Needs rustup (adds the musl target when missing) and musl-gcc (Debian: musl-tools) for
# aws-lc-sys's C code. Builds in target/static (CARGO_TARGET_DIR overrides), apart from the
# workspace's usual target dir, so it never waits on that build lock.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target=x86_64-unknown-linux-musl
profile=release
if [ "${1:-}" = --profile ]; then profile="${2:?--profile needs release or dev}"; shift 2; fi
verify() { # FILE: static means no program interpreter and no needed shared libraries
  local out=$1 headers version
  if command -v readelf >/dev/null; then
    headers=$(readelf -lW "$out")
    ! grep -q 'INTERP' <<<"$headers" || die "$out has a PT_INTERP: it is dynamically linked"
    ! readelf -dW "$out" | grep -q '(NEEDED)' || die "$out needs shared libraries"
  fi
  version=$("$out" version) || die "$out does not run"
  printf 'build-static: %s (%s, %s bytes)\n' "$out" "$version" "$(wc -c <"$out")" >&2
}
die() { printf 'build-static: %s\n' "$*" >&2; exit 1; }
if [ "${1:-}" = --verify ]; then verify "${2:?--verify needs a FILE}"; exit 0; fi
case "$profile" in release) dir=release ;; dev) dir=debug ;; *) echo "build-static: unknown profile $profile" >&2; exit 2 ;; esac
out="${1:-$root/target/static/swell}"

command -v cargo >/dev/null || die "cargo is not installed (install Rust with rustup)"
command -v musl-gcc >/dev/null ||
  die "musl-gcc is not installed (Debian/Ubuntu: apt-get install musl-tools); aws-lc-sys compiles C for $target"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target" >&2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/static}"
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
# +crt-static is musl's default; said out loud so a changed default cannot go unnoticed.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS:-} -C target-feature=+crt-static"

start=$SECONDS
(cd "$root" && cargo build --profile "$profile" --locked --target "$target" --bin swell)
mkdir -p "$(dirname "$out")"
cp "$CARGO_TARGET_DIR/$target/$dir/swell" "$out"

verify "$out"
printf 'build-static: built in %ss\n' $((SECONDS - start)) >&2
