#!/usr/bin/env bash
# Restarts only the Kafka broker that scripts/kafka/up.sh started (the schema registry keeps
# running): SIGTERM, wait until it has exited, stay down ORDO_BROKER_DOWN_SECONDS (default 0),
# start it again on the same data and wait until it serves. The broker restart fault test
# (test/faults/recovery.test.ts) uses it; so can an operator rehearsing a broker restart.
#
# Same environment as up.sh/down.sh (ORDO_LOCAL_DIR, KAFKA_PORT...). It refuses to touch a
# broker it did not start: the pid file under ORDO_LOCAL_DIR must name a live process whose
# configuration listens on KAFKA_PORT. The controller port is read from that configuration.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/kafka/env.sh
source "$here/env.sh"

log() { printf '[kafka:restart] %s\n' "$*" >&2; }
props="$KAFKA_DIR/server.properties"
pidfile="$KAFKA_DIR/pid"
if [[ ! -f "$pidfile" ]] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "no broker started by scripts/kafka/up.sh under $LOCAL_DIR (no live pid in $pidfile); nothing restarted"
  exit 1
fi
if ! grep -q "^listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT," "$props"; then
  log "the broker under $LOCAL_DIR does not listen on 127.0.0.1:$KAFKA_PORT ($props); nothing restarted"
  exit 1
fi
KAFKA_CONTROLLER_PORT="$(sed -n 's/^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$/\1/p' "$props")"
export KAFKA_PORT KAFKA_CONTROLLER_PORT

bash "$here/down.sh" --kafka-only
sleep "${ORDO_BROKER_DOWN_SECONDS:-0}"
# up.sh waits for "Kafka Server started" in server.log: start from an empty one.
mv -f "$KAFKA_DIR/server.log" "$KAFKA_DIR/server.log.previous" 2>/dev/null || true
bash "$here/up.sh"
