# syntax=docker/dockerfile:1
# plate-policy: a static (musl) binary in a distroless image, UID 65532, no shell.
#   docker build -t harbor.cocdev.co.kr/plate/plate-policy:0.1.0 .
# (Not buildable on the development machine, which has no container engine; see
# docs/operations.md.)

FROM rust:1.95 AS builder
WORKDIR /src
# musl-gcc for the C and assembly parts of ring (TLS); the rest is pure Rust.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# rust-toolchain.toml pins the toolchain; add the targets to that toolchain:
# wasm32-unknown-unknown for the policies build.rs compiles and embeds, musl for the
# static binary.
COPY rust-toolchain.toml ./
RUN rustup target add wasm32-unknown-unknown x86_64-unknown-linux-musl
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p plate-policy \
 && cp target/x86_64-unknown-linux-musl/release/plate-policy /plate-policy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /plate-policy /plate-policy
USER 65532:65532
# 8443: HTTPS admission endpoint; 9090: /healthz, /readyz, /metrics.
EXPOSE 8443 9090
ENTRYPOINT ["/plate-policy"]
CMD ["--help"]
