# Sourced by hack/test.sh: the one Rust build configuration `make test` compiles with, so the
# tree is compiled once for the tests, the lint and the image:
# - the static musl target, so the `swell` that the tests run is the binary the image ships;
# - clippy-driver as the workspace's compiler (it is rustc plus Clippy's lints), so a full
#   build lints the workspace crates and no separate `cargo clippy` re-checks the dependencies;
# - `-D warnings` for the target's crates (registry crates get `--cap-lints allow` from cargo).
# Every cargo call of a run must see the same values, or cargo rebuilds what they change.
swell_rust_target=x86_64-unknown-linux-musl
export CARGO_BUILD_TARGET="$swell_rust_target"
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
# +crt-static is musl's default; said out loud so a changed default cannot go unnoticed.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static -D warnings"
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
# Where `cargo test` leaves the dev-profile `swell` it builds for the integration tests.
swell_test_binary="target/$swell_rust_target/debug/swell"

swell_rust_target_add() { # the musl standard library, once per toolchain
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$swell_rust_target"; then
    rustup target add "$swell_rust_target" >&2
  fi
}
