# syntax=docker/dockerfile:1
#
# wsticket container image: the release binary on distroless (glibc and CA
# certificates, no shell), running as the non-root user 65532.
#
#   docker build -t wsticket:0.1.0 .
#   docker run --rm wsticket:0.1.0 keygen
#
# For production, pin both base images by digest (FROM image:tag@sha256:...).

FROM rust:1.95-bookworm AS build
WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependencies first, built against placeholder sources: this layer is reused
# until Cargo.toml, Cargo.lock or the build settings (.cargo/config.toml:
# the AEAD backend) change.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/wsticket \
        target/release/deps/wsticket-* target/release/deps/libwsticket-* \
        target/release/.fingerprint/wsticket-*

# Then the service itself.
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0555 target/release/wsticket /out/wsticket

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="wsticket" \
      org.opencontainers.image.description="Short-lived, single-use, origin-bound tickets for WebSocket handshakes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/wsticket /usr/local/bin/wsticket
USER 65532:65532
# 8080: the API (listen); 9102: /metrics (admin_listen).
EXPOSE 8080 9102
ENTRYPOINT ["/usr/local/bin/wsticket"]
CMD ["serve", "--config", "/etc/wsticket/wsticket.toml"]
