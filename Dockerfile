# syntax=docker/dockerfile:1
#
# Images of ofertasws (both on debian:bookworm-slim, running as an unprivileged user):
#
#   docker build --target refresh -t ofertasws-refresh .   refresh-service, ranking model, ONNX Runtime
#   docker build --target api     -t ofertasws-api .       api-service (the default target)
#
# No secret is baked in: JWT_SECRET, DATABASE_URL, REDIS_URL… come from the environment.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------
# ONNX Runtime shared library, extracted from the PyPI wheel by scripts/onnxruntime.sh
# (python3 -m pip download onnxruntime==$ORT_VERSION; the .so needs only glibc and
# libstdc++).
FROM python:3.11-slim-bookworm AS onnxruntime
ARG ORT_VERSION=1.31.1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /ort
COPY scripts/onnxruntime.sh scripts/onnxruntime.sh
RUN ORT_VERSION="$ORT_VERSION" bash scripts/onnxruntime.sh \
 && test -s .local/onnxruntime/libonnxruntime.so \
 && rm -rf .local/wheels

# ---------------------------------------------------------------------------------------
# Release build of both binaries.
FROM ${RUST_IMAGE} AS builder
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
WORKDIR /src

# 1. Dependencies only: the manifests plus placeholder sources. This layer is rebuilt
#    only when a Cargo.toml or Cargo.lock changes, not on every source edit.
#    (rust-toolchain.toml is left out on purpose: the image's toolchain is the pinned one.)
COPY Cargo.toml Cargo.lock ./
COPY shared/Cargo.toml shared/Cargo.toml
COPY api-service/Cargo.toml api-service/Cargo.toml
COPY refresh-service/Cargo.toml refresh-service/build.rs refresh-service/
#    The system tests and the studies (bench/studies) are workspace members no binary
#    depends on (never built here; `--bins` builds the default members only): their
#    manifests and empty targets let cargo load the workspace and check Cargo.lock.
COPY system-tests/Cargo.toml system-tests/Cargo.toml
COPY bench/studies/Cargo.toml bench/studies/Cargo.toml
RUN set -eux; \
    mkdir -p migrations system-tests/src bench/studies/src/bin/delta_settings bench/studies/src/bin/latency; \
    echo '//! placeholder' > system-tests/src/lib.rs; \
    for study in delta_settings/main latency/main compression_levels; do \
        echo 'fn main() {}' > "bench/studies/src/bin/$study.rs"; \
    done; \
    for crate in shared api-service refresh-service; do \
        mkdir -p "$crate/src"; \
        echo 'fn main() {}' > "$crate/src/main.rs"; \
        echo '//! placeholder' > "$crate/src/lib.rs"; \
    done; \
    cargo build --release --locked --bins; \
    rm -rf shared/src api-service/src refresh-service/src

# 2. The workspace itself. `touch` makes the real sources newer than the placeholders'
#    build outputs, so cargo rebuilds the three crates (and only them).
COPY migrations migrations
COPY shared shared
COPY api-service api-service
COPY refresh-service refresh-service
RUN set -eux; \
    find shared api-service refresh-service migrations -type f -exec touch {} +; \
    cargo build --release --locked --bins; \
    mkdir -p /out; \
    cp target/release/refresh-service target/release/api-service /out/

# ---------------------------------------------------------------------------------------
# Common runtime base.
FROM ${RUNTIME_IMAGE} AS runtime
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates libstdc++6; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 ofertas; \
    useradd --system --uid 10001 --gid ofertas --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin ofertas
ENV RUST_LOG=info LOG_FORMAT=json
WORKDIR /app
LABEL org.opencontainers.image.licenses="MIT"

# ---------------------------------------------------------------------------------------
# refresh-service: `run` (daemon, default), `once`, `migrate`, `trigger`.
FROM runtime AS refresh
COPY --from=onnxruntime /ort/.local/onnxruntime/libonnxruntime.so /opt/ofertasws/lib/libonnxruntime.so
COPY refresh-service/models/offer_ranker.onnx /opt/ofertasws/models/offer_ranker.onnx
COPY --from=builder /out/refresh-service /usr/local/bin/refresh-service
ENV RANKER_MODEL=/opt/ofertasws/models/offer_ranker.onnx \
    ORT_DYLIB_PATH=/opt/ofertasws/lib/libonnxruntime.so
LABEL org.opencontainers.image.title="ofertasws refresh-service"
# `run` only: GET /health, /ready and /metrics (REFRESH_METRICS_BIND).
EXPOSE 9100
USER 10001:10001
ENTRYPOINT ["refresh-service"]
CMD ["run"]

# ---------------------------------------------------------------------------------------
# api-service: `serve` (default) and `token`.
FROM runtime AS api
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends curl; \
    rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/api-service /usr/local/bin/api-service
ENV API_BIND=0.0.0.0:8000
EXPOSE 8000
LABEL org.opencontainers.image.title="ofertasws api-service"
USER 10001:10001
# Liveness only (/health): a replica without a snapshot yet is alive but not ready (/ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${API_BIND##*:}/health" || exit 1
ENTRYPOINT ["api-service"]
CMD ["serve"]
