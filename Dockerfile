# The outbox server with its browser bundle, built in two stages:
# 1. a Rust image installs the tools (scripts/setup.sh: wasm target, cargo-leptos, the
#    wasm-bindgen CLI matching Cargo.lock, binaryen's wasm-opt from npm) and runs the release
#    build (server + wasm bundle, `cargo leptos build --release`);
# 2. a slim Debian image runs the binary with the site files.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Tools first: they change rarely, so this layer stays cached.
COPY scripts/setup.sh scripts/setup.sh
COPY Cargo.lock Cargo.lock
COPY end2end/package.json end2end/package-lock.json end2end/
RUN scripts/setup.sh run
COPY . .
RUN PATH="/src/end2end/node_modules/.bin:$PATH" cargo leptos build --release

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/outbox /usr/local/bin/outbox
COPY --from=build /src/target/site /srv/outbox/site
# Fault injection is an operator's drill tool: off in the image unless FAULT_INJECTION=true.
ENV LEPTOS_SITE_ROOT=/srv/outbox/site \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    DATA_DIR=/var/lib/outbox \
    FAULT_INJECTION=false
VOLUME /var/lib/outbox
EXPOSE 3000
CMD ["outbox"]
