#!/usr/bin/env bash
# Starts a single-node KRaft Kafka broker and an Apicurio schema registry on 127.0.0.1,
# both fetched from Maven Central with Maven (no Docker). Idempotent: if they already
# answer, it does nothing. State, logs and pids live under .local/ (git-ignored).
#
# Environment (all optional):
#   KAFKA_PORT (9092)  KAFKA_CONTROLLER_PORT (9093)  REGISTRY_PORT (8081)
#   KAFKA_SASL_SSL_PORT (KAFKA_PORT + 3)  KAFKA_SSL_PORT (KAFKA_PORT + 4)  KAFKA_JWKS_PORT (KAFKA_PORT + 5)
#   REGISTRY_MANAGEMENT_PORT (REGISTRY_PORT + 10: the registry's own health/metrics port)
#   ORDO_LOCAL_DIR (<repo>/.local)   ORDO_JAVA_FOR_REGISTRY (a java >= 21; found if unset)
#
# --env: once ready, print `export KAFKA_BROKERS=… SCHEMA_REGISTRY_URL=…` on stdout
# (everything else goes to stderr), so `eval "$(bash scripts/kafka/up.sh --env)"` starts
# the stack and points this shell's `ordo` commands at it.
set -euo pipefail
print_env=0
for arg in "$@"; do
  case "$arg" in
    --env) print_env=1 ;;
    *) printf '[kafka:up] unknown argument %s (usage: up.sh [--env])\n' "$arg" >&2; exit 2 ;;
  esac
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/kafka/env.sh
source "$here/env.sh"

mkdir -p "$LOCAL_DIR" "$KAFKA_DIR" "$REGISTRY_DIR"

log() { printf '[kafka:up] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, seconds, command...
  local name="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS > deadline)); then log "$name did not come up within ${secs}s"; return 1; fi
    sleep 0.5
  done
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------- fetch (cached in ~/.m2 and .local) ----------
classpath_file="$KAFKA_DIR/classpath-$KAFKA_VERSION.txt"
if [[ ! -s "$classpath_file" ]]; then
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:build-classpath -Dmdep.outputFile="$classpath_file.tmp" >&2
  mv "$classpath_file.tmp" "$classpath_file"
fi

registry_home="$REGISTRY_DIR/apicurio-$REGISTRY_VERSION"
if [[ ! -f "$registry_home/quarkus-run.jar" ]]; then
  log "fetching Apicurio Registry $REGISTRY_VERSION from Maven Central"
  mvn -q -B -f "$here/pom.xml" dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -DoutputDirectory="$REGISTRY_DIR/download" >&2
  rm -rf "$registry_home.tmp" && mkdir -p "$registry_home.tmp"
  tar -xzf "$REGISTRY_DIR/download/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz" -C "$registry_home.tmp"
  rm -rf "$registry_home" && mv "$registry_home.tmp" "$registry_home"
  rm -rf "$REGISTRY_DIR/download"
fi

# ---------- Kafka ----------
# The broker always offers secured listeners next to PLAINTEXT (which every other test
# uses, as the super user ANONYMOUS): SASL_SSL (SCRAM-SHA-512/256, OAUTHBEARER) and SSL
# with client certificates required (mTLS); see scripts/kafka/secure.sh.
# shellcheck source=scripts/kafka/secure.sh
source "$here/secure.sh"
if port_open "$KAFKA_PORT"; then
  log "something already listens on 127.0.0.1:$KAFKA_PORT; assuming it is the broker"
else
  make_security_material
  security_write_stack_json
  if ! port_open "$KAFKA_JWKS_PORT"; then
    # The broker fetches the JWKS when it starts (and does not start without it): serve it first.
    nohup node -e "$jwks_server" "$KAFKA_JWKS_PORT" "$SECURITY_DIR/jwks.json" >"$KAFKA_DIR/jwks.log" 2>&1 &
    echo $! >"$KAFKA_DIR/jwks.pid"
    wait_for jwks 10 port_open "$KAFKA_JWKS_PORT"
  fi
  props="$KAFKA_DIR/server.properties"
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
$(security_broker_properties)
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.abort.timed.out.transaction.cleanup.interval.ms=5000
log.cleaner.backoff.ms=5000
delete.topic.enable=true
PROPS
  cat > "$KAFKA_DIR/log4j2.properties" <<'LOG'
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:ordo.kafka.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
LOG
  cp="$(cat "$classpath_file")"
  java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dordo.kafka.log="$KAFKA_DIR/server.log"
    -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="$JWKS_URL")
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    log "formatting KRaft storage in $KAFKA_DIR/data"
    cluster_id="$(java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool random-uuid)"
    mapfile -t scram_args < <(security_scram_args)
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" "${scram_args[@]}" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; exit 1; }
    cp "$SECURITY_DIR/scram-ordo.password" "$KAFKA_DIR/data/.ordo-scram"
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$props" >"$KAFKA_DIR/stdout.log" 2>&1 &
  echo $! >"$KAFKA_DIR/pid"
fi

# ---------- schema registry ----------
if port_open "$REGISTRY_PORT"; then
  log "something already listens on 127.0.0.1:$REGISTRY_PORT; assuming it is the registry"
else
  registry_java="$(find_java 21)" || {
    log "Apicurio Registry $REGISTRY_VERSION needs Java >= 21; none found (set ORDO_JAVA_FOR_REGISTRY)"; exit 1; }
  log "starting Apicurio Registry $REGISTRY_VERSION on 127.0.0.1:$REGISTRY_PORT ($registry_java), schemas in $REGISTRY_DATA_DIR"
  mkdir -p "$REGISTRY_DATA_DIR"
  # Schemas persist in an H2 file database (the default is in memory): Kafka keeps records
  # framed with schema ids across restarts, so the registry must keep what the ids mean, or
  # a restarted registry hands out id 1 again for a different schema. FILE_LOCK=FS: the OS
  # releases the lock when the process dies, even by SIGKILL. WRITE_DELAY=0: a registration
  # is on disk when the registry answers it.
  # Started directly (not inside a subshell list) so that $! is the java process itself.
  pushd "$registry_home" >/dev/null
  nohup "$registry_java" -Xms128m -Xmx512m \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
    -Dquarkus.log.level=WARN \
    -Dapicurio.ccompat.legacy-id-mode.enabled=false \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    "-Dapicurio.datasource.url=jdbc:h2:file:$REGISTRY_DATA_DIR/registry;FILE_LOCK=FS;WRITE_DELAY=0" \
    -jar quarkus-run.jar >"$REGISTRY_DIR/stdout.log" 2>&1 &
  echo $! >"$REGISTRY_DIR/pid"
  popd >/dev/null
fi

kafka_ready() {
  alive "$KAFKA_DIR/pid" || port_open "$KAFKA_PORT" || { log "Kafka exited; see $KAFKA_DIR/stdout.log"; tail -20 "$KAFKA_DIR/stdout.log" >&2; exit 1; }
  port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_DIR/server.log" 2>/dev/null
}
registry_ready() { curl -fsS "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects" >/dev/null 2>&1; }

if [[ -f "$KAFKA_DIR/pid" ]]; then
  wait_for kafka 90 kafka_ready
  # Storage formatted before the SCRAM users existed (or with other passwords): add them now.
  if ! cmp -s "$SECURITY_DIR/scram-ordo.password" "$KAFKA_DIR/data/.ordo-scram"; then
    log "adding the SCRAM users to storage formatted without them"
    for user in ordo ordo-acl; do
      password="$(cat "$SECURITY_DIR/scram-$user.password")"
      # One mechanism per request: the broker refuses to alter a user's credentials twice in one.
      for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
        java -Xmx256m -cp "$(cat "$classpath_file")" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
          --add-config "$mechanism=[password=$password]" \
          --entity-type users --entity-name "$user" >>"$KAFKA_DIR/format.log" 2>&1 || { tail -5 "$KAFKA_DIR/format.log" >&2; exit 1; }
      done
    done
    cp "$SECURITY_DIR/scram-ordo.password" "$KAFKA_DIR/data/.ordo-scram"
  fi
fi
wait_for registry 90 registry_ready
log "ready: KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
if [[ -f "$SECURITY_DIR/stack.json" ]] && port_open "$KAFKA_SASL_SSL_PORT"; then
  log "secured: SASL_SSL 127.0.0.1:$KAFKA_SASL_SSL_PORT (SCRAM, OAUTHBEARER), SSL 127.0.0.1:$KAFKA_SSL_PORT (mTLS); CA, certificates and passwords in $SECURITY_DIR"
fi
if [[ $print_env == 1 ]]; then
  printf 'export KAFKA_BROKERS=127.0.0.1:%s\n' "$KAFKA_PORT"
  printf 'export SCHEMA_REGISTRY_URL=http://127.0.0.1:%s/apis/ccompat/v7\n' "$REGISTRY_PORT"
fi
