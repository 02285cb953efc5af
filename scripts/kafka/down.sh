#!/usr/bin/env bash
# Stops what scripts/kafka/up.sh started (by the pids it wrote), gracefully, then by force.
# ORDO_KAFKA_WIPE=1 also deletes the broker's data, its throwaway certificates and the registry's
# schemas (a fresh cluster on the next up; schemas are wiped with the data whose records refer to them).
# --registry-only stops only the registry (a plain up.sh then starts it again, with the
# schemas it had: the fault suite's registry restart).
# --kafka-only stops only the broker, leaving the registry and the local JWKS server running
# (scripts/kafka/restart-broker.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/kafka/env.sh
source "$here/env.sh"

stop_pidfile() { # name, pidfile
  local name="$1" pidfile="$2" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    printf '[kafka:down] stopping %s (pid %s)\n' "$name" "$pid" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

registry_only=0 kafka_only=0
for arg in "$@"; do
  case "$arg" in
    --registry-only) registry_only=1 ;;
    --kafka-only) kafka_only=1 ;;
    *) printf '[kafka:down] unknown argument %s (known: --registry-only, --kafka-only)\n' "$arg" >&2; exit 64 ;;
  esac
done

if [[ $kafka_only == 0 ]]; then stop_pidfile registry "$REGISTRY_DIR/pid"; fi
if [[ $registry_only == 1 ]]; then exit 0; fi
stop_pidfile kafka "$KAFKA_DIR/pid"
# The JWKS the broker fetches at startup (it will not start without it): a broker restart
# keeps it serving, so only a full stop ends it.
if [[ $kafka_only == 0 ]]; then stop_pidfile jwks "$KAFKA_DIR/jwks.pid"; fi
# A broker restart (--kafka-only) never wipes: the restarted broker and the running registry use all of it.
if [[ "${ORDO_KAFKA_WIPE:-0}" == 1 && $kafka_only == 0 ]]; then rm -rf "$KAFKA_DIR/data" "$SECURITY_DIR" "$REGISTRY_DATA_DIR"; fi
