# syntax=docker/dockerfile:1
# The operator's image: built with the same command CI runs
# (`cargo build --release --locked -p identity-settings-operator`), shipped on distroless (glibc,
# CA certificates, no shell), running as a non-root user. Cargo needs every workspace member's
# manifest, so crates/ is copied into the build stage, but only the operator and the identity
# client it uses are compiled; the stand-ins and the demo never are, and the image holds one
# binary.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p identity-settings-operator \
    && cp target/release/identity-settings-operator /identity-settings-operator

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="identity-settings-operator" \
      org.opencontainers.image.description="Keeps UiPath Identity Server organization settings equal to IdentitySettingPolicy resources" \
      org.opencontainers.image.source="https://github.com/identitysettings-dev/identity-settings-operator" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /identity-settings-operator /usr/local/bin/identity-settings-operator
# Two glibc malloc arenas instead of eight per core: the operator's memory is many small,
# long-lived objects (a cache entry per policy), and per-thread arenas mostly add unreturned
# free space (measured by the benchmark, which runs the operator with the same setting).
ENV MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/identity-settings-operator"]
CMD ["run"]
