# The operator's image, on `scratch`: one statically linked binary (musl, built with `cargo build
# --profile release-image --locked --target x86_64-unknown-linux-musl -p identity-settings-operator`;
# the profile is the release build with LTO and no symbols, see Cargo.toml), a CA bundle for TLS
# to identity servers, and /etc/passwd and /etc/group lines for the non-root user 65532 (the
# chart's runAsUser). No shell, no package manager, no libc.
#
# Two ways to build it; both give the same files and configuration (the stage `metadata` holds
# the labels, user and entry point; the stages after it add the files hack/image-rootfs lays out):
#
#   docker build -t REGISTRY/identity-settings-operator:0.1.0 .
#       From source, with registry access (BuildKit, the default since Docker 23, or podman):
#       the stage `build` compiles the binary in the Rust image and gathers the files under
#       /rootfs; the last stage copies them.
#
#   hack/build-image
#       Without any registry (CI's machines reach none): builds the binary on the host, stages
#       the files under rootfs/ of a small build context (a temporary directory with a copy of
#       this file) and runs `podman|docker build --target prebuilt`. Every stage up to `prebuilt` is FROM scratch,
#       and `prebuilt` comes before `build`, so nothing is pulled, not even by the legacy builder.
#
# Cargo needs every workspace member's manifest, so crates/ is copied into the build stage, but
# only the operator and the crates it uses are compiled.

ARG RUST_VERSION=1.95

FROM scratch AS metadata
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="identity-settings-operator" \
      org.opencontainers.image.description="Keeps UiPath Identity Server organization settings equal to IdentitySettingPolicy resources" \
      org.opencontainers.image.source="https://github.com/identitysettings-dev/identity-settings-operator" \
      org.opencontainers.image.version="${VERSION}"
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/identity-settings-operator"]
CMD ["run"]

# The offline path: rootfs/ staged by hack/build-image.
FROM metadata AS prebuilt
COPY rootfs/ /

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# musl-gcc for the crates that compile C (the TLS library's crypto, jemalloc, which also needs
# make). Unpinned:
# bookworm's versions move with its security updates; the Rust image is pinned by RUST_VERSION.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools make ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY hack/image-rootfs ./hack/image-rootfs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile release-image --locked --target x86_64-unknown-linux-musl \
       -p identity-settings-operator \
    && hack/image-rootfs target/x86_64-unknown-linux-musl/release-image/identity-settings-operator \
       /etc/ssl/certs/ca-certificates.crt /rootfs

FROM metadata
COPY --from=build /rootfs/ /
