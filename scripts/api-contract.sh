#!/usr/bin/env bash
# The API contract check of `make test` (`make contract`): starts the debug server
# (target/debug/outbox, built by `cargo test`) on a free port with its own empty data
# directory, waits for /readyz, and runs schemathesis on every operation of the OpenAPI
# document it serves (GET /api/openapi.json), with the admin token. Any failure fails the run;
# the server is stopped however the run ends.
#
#   CONTRACT_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   CONTRACT_SEED          replay a run: the seed schemathesis printed for it
#
# $SCHEMATHESIS_VENV (where scripts/setup.sh installed schemathesis) comes from the Makefile.
# One worker: with two, schemathesis' threads once crashed inside CPython 3.11's ast module
# ("SystemError: AST constructor recursion depth mismatch", in hypothesis' lambda_sources)
# on a loaded machine, ending a run whose cases had all passed with exit code 2.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SCHEMATHESIS_VENV:?set by the Makefile}"

server=target/debug/outbox
[ -x "$server" ] || { echo "$server is missing: run make contract" >&2; exit 1; }

data=$(mktemp -d "${TMPDIR:-/tmp}/outbox-contract-XXXXXX")
report=target/schemathesis
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
token="contract-admin-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
pid=
stop() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap stop EXIT

# A fast breaker and retries, like the e2e server, so faults set by the fuzzer pass quickly.
LEPTOS_SITE_ADDR="127.0.0.1:$port" LEPTOS_SITE_ROOT=target/site DATA_DIR="$data" \
  ADMIN_TOKEN="$token" RUST_LOG=warn BREAKER_OPEN_TIMEOUT=1s RETRY_INITIAL_DELAY=20ms \
  RETRY_MAX_DELAY=100ms "$server" >"$data/server.log" 2>&1 &
pid=$!

for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the server exited before it was ready:" >&2
    cat "$data/server.log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS -o /dev/null "$base/readyz"

mkdir -p "$report"
status=0
"$SCHEMATHESIS_VENV/bin/schemathesis" run "$base/api/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-100}" \
  ${CONTRACT_SEED:+--seed "$CONTRACT_SEED"} \
  --workers 1 \
  --request-timeout 20 \
  --output-sanitize false \
  --report junit --report-junit-path "$report/junit.xml" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (warnings and errors) ---" >&2
  tail -n 50 "$data/server.log" >&2
fi
exit "$status"
