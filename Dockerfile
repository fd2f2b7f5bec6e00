# syntax=docker/dockerfile:1
# Swell's image: one static `swell` executable (musl) on `scratch`, with CA certificates
# and a non-root user (65532, as distroless/static:nonroot), nothing else.
#
#   docker build -t swell:0.1.0 .
#   buildah build -t swell:0.1.0 .          # daemonless
#   hack/image.sh                           # no base image to pull: builds the binary on
#                                           # the host and only the runtime stage here
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
# Where the binary and the runtime files come from: `build` compiles them in RUST_IMAGE;
# `prebuilt` takes them from the context (hack/image.sh stages static/swell, static/rootfs).
ARG ARTIFACTS=build

FROM ${RUST_IMAGE} AS build
# musl-gcc compiles aws-lc-sys's C for the musl target; ca-certificates for the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target/static \
    hack/build-static.sh /out/swell && hack/image-rootfs.sh /rootfs

FROM scratch AS prebuilt
COPY static/swell /out/swell
COPY static/rootfs/ /rootfs/

FROM ${ARTIFACTS} AS artifacts

FROM scratch
COPY --from=artifacts /rootfs/ /
COPY --from=artifacts /out/swell /swell
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/swell"]
CMD ["operator"]
