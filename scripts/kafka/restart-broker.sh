#!/usr/bin/env bash
# Restarts only the Kafka broker that scripts/kafka/up.sh started (the schema registry keeps
# running): SIGTERM, wait until it has exited (down.sh --kafka-only), stay down
# ORDO_BROKER_DOWN_SECONDS (default 0), then start the very same command line again (same
# configuration, same data) and wait until it serves. The broker restart fault test
# (test/faults/recovery.test.ts) uses it; so can an operator rehearsing a broker restart.
#
# Same environment as up.sh/down.sh (ORDO_LOCAL_DIR, KAFKA_PORT). It refuses to touch a
# broker it did not start: the pid file under ORDO_LOCAL_DIR must name a live process whose
# configuration has a listener on 127.0.0.1:KAFKA_PORT. Linux only (reads /proc).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/kafka/env.sh
source "$here/env.sh"

log() { printf '[kafka:restart] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

props="$KAFKA_DIR/server.properties"
pidfile="$KAFKA_DIR/pid"
pid="$(cat "$pidfile" 2>/dev/null || true)"
if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null || [[ ! -r "/proc/$pid/cmdline" ]]; then
  log "no broker started by scripts/kafka/up.sh under $LOCAL_DIR (no live pid in $pidfile); nothing restarted"
  exit 1
fi
if ! grep -Eq "^listeners=(.*,)?PLAINTEXT://127\.0\.0\.1:$KAFKA_PORT(,|$)" "$props"; then
  log "the broker under $LOCAL_DIR does not listen on 127.0.0.1:$KAFKA_PORT ($props); nothing restarted"
  exit 1
fi
mapfile -d '' command <"/proc/$pid/cmdline"
workdir="$(readlink "/proc/$pid/cwd")"

bash "$here/down.sh" --kafka-only
sleep "${ORDO_BROKER_DOWN_SECONDS:-0}"
# Readiness is the "started" line of a fresh server.log (the old one already has it).
mv -f "$KAFKA_DIR/server.log" "$KAFKA_DIR/server.log.previous" 2>/dev/null || true
log "starting the broker again on 127.0.0.1:$KAFKA_PORT"
cd "$workdir"
nohup "${command[@]}" </dev/null >>"$KAFKA_DIR/stdout.log" 2>&1 &
echo $! >"$pidfile"
deadline=$((SECONDS + 90))
until port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_DIR/server.log" 2>/dev/null; do
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then log "the broker exited; see $KAFKA_DIR/stdout.log"; exit 1; fi
  if ((SECONDS > deadline)); then log "the broker did not come back within 90 s"; exit 1; fi
  sleep 0.5
done
log "ready: KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
