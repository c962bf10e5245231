# syntax=docker/dockerfile:1
# The operator's image: built with the same command CI runs (`cargo build --release --locked`),
# shipped on distroless (glibc, CA certificates, no shell), running as a non-root user.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/identity-settings-operator /identity-settings-operator

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="identity-settings-operator" \
      org.opencontainers.image.description="Keeps UiPath Identity Server organization settings equal to IdentitySettingPolicy resources" \
      org.opencontainers.image.source="https://github.com/identitysettings-dev/identity-settings-operator" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /identity-settings-operator /usr/local/bin/identity-settings-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/identity-settings-operator"]
CMD ["run"]
