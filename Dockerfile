# syntax=docker/dockerfile:1.7
# One image for every role: `serve` (the default), `worker`, `migrate`, `check`, … (the
# Kubernetes manifests in deploy/k8s pass the subcommand as args).
#
#   docker build -t outgrow .
#   docker run --rm -p 8080:8080 outgrow serve --demo
#
# Stages: chef (the toolchain + cargo-chef) → planner (the dependency recipe from the manifests)
# → builder (dependencies cooked in their own layer, rebuilt only when Cargo.toml/Cargo.lock
# change; then the source, built by deploy/container/build — the same script the test suite
# runs) → runtime (distroless: glibc, CA certificates, tzdata, no shell, non-root).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# cargo-chef caches the dependency build as its own layer; pinned, like every tool here.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The dependency layer: invalidated by a change to a manifest or the lock file, never by source.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p outgrow --bin outgrow
COPY . .
# The commit goes into the release name error reports carry (outgrow@<version>+<commit>).
ARG OUTGROW_BUILD_COMMIT=""
RUN deploy/container/build --profile release --out /rootfs --uid 65532

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="outgrow" \
      org.opencontainers.image.description="Outgrow: the store's browser UI, JSON API and job workers in one binary" \
      org.opencontainers.image.source="https://github.com/outgrow/outgrow" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=builder /rootfs/usr/local/bin/outgrow /usr/local/bin/outgrow
COPY --from=builder --chown=65532:65532 /rootfs/var/lib/outgrow /var/lib/outgrow
# Containers listen on every interface and log JSON lines to stdout; the rest of the
# configuration (database, Redis, object store, keys) comes from OUTGROW_* at run time.
ENV OUTGROW_LISTEN=0.0.0.0:8080 \
    OUTGROW_DATA_DIR=/var/lib/outgrow \
    OUTGROW_LOG_FORMAT=json
WORKDIR /var/lib/outgrow
USER 65532:65532
EXPOSE 8080
# The binary probes its own listener (GET /healthz): the image has no shell or curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/outgrow", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/outgrow"]
CMD ["serve"]
