# syntax=docker/dockerfile:1
# llmgate: build in the official Rust image, run on distroless (glibc, no shell) as non-root.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The image needs no debug line tables (those are for profiling): a stripped binary is 15 MB.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
# jemalloc (the allocator) is built from C sources with make, which the slim image lacks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml/Cargo.lock change.
# .cargo/config.toml carries the allocator's compiled-in options.
COPY .cargo ./.cargo
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin llmgate \
 && rm -rf src
COPY migrations ./migrations
COPY src ./src
# Make sure cargo sees the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin llmgate \
 && mkdir /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/llmgate /usr/local/bin/llmgate
COPY --from=build --chown=65532:65532 /data /data
ENV LLMGATE_LISTEN=0.0.0.0:8080 \
    LLMGATE_DATABASE_URL=sqlite:///data/llmgate.db \
    LLMGATE_LOG_FORMAT=json
VOLUME /data
WORKDIR /data
EXPOSE 8080
USER nonroot
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/llmgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/llmgate"]
CMD ["serve"]
