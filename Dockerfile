# syntax=docker/dockerfile:1
# Swell's image: one static `swell` executable (musl) on `scratch`, with CA certificates
# and a non-root user (65532, as distroless/static:nonroot), nothing else.
#
#   docker build -t swell:0.1.0 .
#   buildah build -t swell:0.1.0 .          # daemonless; needs to pull RUST_IMAGE
#
# The build step is hack/build-static.sh: run it on the host to get the same static binary
# (it checks there is no PT_INTERP and that `swell version` runs).
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm

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
    hack/build-static.sh /out/swell
# The runtime filesystem: CA bundle (AWS and other HTTPS upstreams), and passwd/group
# entries so the non-root user has a name.
RUN mkdir -p /rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build /out/swell /swell
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/swell"]
CMD ["operator"]
