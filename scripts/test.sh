#!/usr/bin/env bash
# npm test: unit, deploy, integration and fault suites; the last two against a real local
# Kafka + registry. Uses KAFKA_BROKERS / SCHEMA_REGISTRY_URL when set; otherwise starts the
# local stack with scripts/kafka/up.sh and stops it afterwards (only if this script started
# it). With only `--project unit` and/or `--project deploy` no stack is started: they need
# no broker. Extra arguments go to vitest (e.g. `npm test -- --project unit`).
# Run through npm, node is the pinned one (package.json's `node` devDependency, first on
# PATH): the version is printed and kept in .local/test-node-version for .ci/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
source scripts/kafka/env.sh

# The projects named on the command line (none: all of them).
projects=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --project) projects+=("${args[i + 1]:-}"); i=$((i + 1)) ;;
    --project=*) projects+=("${args[i]#--project=}") ;;
  esac
done
needs_stack=1
if [[ ${#projects[@]} -gt 0 ]]; then
  needs_stack=0
  for project in "${projects[@]}"; do
    [[ $project == unit || $project == deploy ]] || needs_stack=1
  done
fi

started=0
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ $needs_stack == 1 && -z "${KAFKA_BROKERS:-}" ]]; then
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
node -p 'process.version' > .local/test-node-version
echo "tests run on Node $(cat .local/test-node-version) ($(command -v node))"
npx vitest run --reporter=default --reporter=json --outputFile.json=.local/test-results.json "$@"
