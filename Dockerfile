# Multi-stage: build with the Rust toolchain, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY tests ./tests
RUN cargo build --release --locked --bin payout-worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home payout
COPY --from=build /src/target/release/payout-worker /usr/local/bin/payout-worker
COPY config /app/config
WORKDIR /app
USER payout
ENTRYPOINT ["payout-worker"]
CMD ["run"]
