#!/usr/bin/env bash
# npm test: unit, integration and fault suites against a real local Kafka + registry.
# Uses KAFKA_BROKERS / SCHEMA_REGISTRY_URL when set; otherwise starts the local stack
# with scripts/kafka/up.sh and stops it afterwards (only if this script started it).
# Extra arguments go to vitest (e.g. `npm test -- --project unit`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
source scripts/kafka/env.sh

started=0
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  if ! port_open "$KAFKA_PORT" || ! port_open "$REGISTRY_PORT"; then
    bash scripts/kafka/up.sh
    started=1
  fi
  export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
  export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"
fi
cleanup() { if [[ $started == 1 ]]; then bash scripts/kafka/down.sh; fi; }
trap cleanup EXIT

mkdir -p .local
npx vitest run --reporter=default --reporter=json --outputFile.json=.local/test-results.json "$@"
