#!/usr/bin/env bash
# Installs what `make run` / `make test` need and is missing. Idempotent: every step checks
# first and skips work already done (cargo-installed tools are checked by version).
#
#   scripts/setup.sh run    libssl-dev, wasm target, cargo-leptos, wasm-bindgen CLI, npm packages
#   scripts/setup.sh test   the same, plus Debian's chromium for Playwright, promtool for the
#                           metrics test, the tansu Kafka-protocol broker, and kcat with a
#                           librdkafka that can talk to tansu (scripts/kcat), and schemathesis
#                           in its own venv (the API contract check, scripts/api-contract.sh)
#   scripts/setup.sh bench  libssl-dev, the tansu broker (the relay bench) and valgrind
#                           (callgrind counts the instructions of `make bench-cpu`)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

CARGO_LEPTOS_VERSION=0.3.10
# The wasm-bindgen CLI must equal the library version locked in Cargo.lock.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

say() { printf '[setup] %s\n' "$*"; }

apt_install() { # why, packages...: Debian's packages, without their recommendations
  local why=$1
  shift
  say "installing Debian's $* ($why)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

has_version() { # command, expected version: true when `command --version` mentions it
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF " $2"
}

wasm_target() {
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "wasm32-unknown-unknown target: present"
  else
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

cargo_leptos() {
  if has_version cargo-leptos "$CARGO_LEPTOS_VERSION"; then
    say "cargo-leptos $CARGO_LEPTOS_VERSION: present"
  else
    # Its own release profile asks for fat LTO in one codegen unit (about 15 minutes on two
    # cores). It only drives the builds, so its speed hardly matters: a cheap profile instead.
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (a few minutes, once)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
      cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
}

wasm_bindgen() {
  if has_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then
    say "wasm-bindgen $WASM_BINDGEN_VERSION: present"
  else
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    # Not --locked: one of its locked dependencies was yanked.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
}

npm_packages() {
  # Playwright (driving Debian's chromium, never downloading a browser) and binaryen (wasm-opt).
  local stamp=end2end/node_modules/.package-lock.json
  if [ -f "$stamp" ] && [ "$stamp" -nt end2end/package-lock.json ]; then
    say "npm packages: present"
  else
    say "installing npm packages"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

# The ScyllaDB driver's TLS links Debian's OpenSSL (openssl-sys): headers and pkg-config.
openssl_dev() {
  if [ -f /usr/include/openssl/ssl.h ] && command -v pkg-config >/dev/null 2>&1; then
    say "libssl-dev, pkg-config: present"
  else
    apt_install "the ScyllaDB driver's TLS" libssl-dev pkg-config
  fi
}

# promtool (Debian's prometheus package) checks the /metrics output in the tests.
promtool_check() {
  if command -v promtool >/dev/null 2>&1; then
    say "promtool: present"
  else
    apt_install "for promtool" prometheus
  fi
}

# tansu with SQLite storage, into its own folder ($TANSU and $TANSU_VERSION come from the
# Makefile). Newer tansu releases need a newer rustc than these machines have.
tansu_broker() {
  : "${TANSU:?set by the Makefile}" "${TANSU_VERSION:?set by the Makefile}"
  if has_version "$TANSU" "$TANSU_VERSION"; then
    say "tansu $TANSU_VERSION: present"
  else
    say "installing tansu $TANSU_VERSION with SQLite storage (the tests' Kafka broker; once)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql \
      --root "$(dirname "$(dirname "$TANSU")")"
  fi
}

# kcat reads the topics back in the tests and by hand (scripts/kcat). Debian's kcat 1.7.1 is
# linked against librdkafka 2.0, which cannot parse tansu's ApiVersions answer; scripts/kcat
# runs it on a newer librdkafka, taken from the manylinux wheel of confluent-kafka on PyPI
# (the same C library, ABI-compatible under its soname librdkafka.so.1). The Makefile sets
# $KCAT_LIBRDKAFKA (the folder) and $CONFLUENT_KAFKA_VERSION (the wheel).
kcat_tool() {
  : "${KCAT_LIBRDKAFKA:?set by the Makefile}" "${CONFLUENT_KAFKA_VERSION:?set by the Makefile}"
  if command -v kcat >/dev/null 2>&1; then
    say "kcat: present"
  else
    apt_install "reads topics back" kcat
  fi
  if [ -f "$KCAT_LIBRDKAFKA/librdkafka.so.1" ]; then
    say "librdkafka of confluent-kafka $CONFLUENT_KAFKA_VERSION for kcat: present"
  else
    say "fetching librdkafka for kcat from confluent-kafka $CONFLUENT_KAFKA_VERSION's wheel (once)"
    local wheels
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --python-version 3.11 \
      "confluent-kafka==$CONFLUENT_KAFKA_VERSION" -d "$wheels"
    mkdir -p "$KCAT_LIBRDKAFKA"
    python3 - "$wheels" "$KCAT_LIBRDKAFKA" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    [lib] = [n for n in z.namelist() if n.startswith("confluent_kafka.libs/librdkafka")]
    target = pathlib.Path(sys.argv[2]) / "librdkafka.so.1"
    target.write_bytes(z.read(lib))
PY
    rm -rf "$wheels"
  fi
}

# schemathesis fuzzes the JSON API against its OpenAPI document (scripts/api-contract.sh), from
# PyPI into a venv of its own, named by version ($SCHEMATHESIS_VENV and $SCHEMATHESIS_VERSION
# come from the Makefile).
schemathesis_tool() {
  : "${SCHEMATHESIS_VENV:?set by the Makefile}" "${SCHEMATHESIS_VERSION:?set by the Makefile}"
  if has_version "$SCHEMATHESIS_VENV/bin/schemathesis" "$SCHEMATHESIS_VERSION"; then
    say "schemathesis $SCHEMATHESIS_VERSION: present"
  else
    say "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV (once)"
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
      apt_install "a venv for schemathesis" python3-venv
    fi
    rm -rf "$SCHEMATHESIS_VENV"
    python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "schemathesis==$SCHEMATHESIS_VERSION"
  fi
}

chromium() {
  if [ -x /usr/bin/chromium ]; then
    say "chromium: present"
  else
    say "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
}

valgrind_tool() {
  if command -v valgrind >/dev/null 2>&1; then
    say "valgrind: present"
  else
    apt_install "instruction counts in make bench-cpu" valgrind
  fi
}

case "${1:-run}" in
  run) openssl_dev; wasm_target; cargo_leptos; wasm_bindgen; npm_packages ;;
  bench) openssl_dev; tansu_broker; valgrind_tool ;;
  test) openssl_dev; wasm_target; cargo_leptos; wasm_bindgen; npm_packages; chromium; promtool_check; tansu_broker; kcat_tool; schemathesis_tool ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
