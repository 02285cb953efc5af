#!/usr/bin/env bash
# The entrypoint of the `kafka` service in docker-compose.secured.yml (apache/kafka image).
# The image's own entrypoint formats KRaft storage without SCRAM credentials and has no way to
# add them, so this one does the image's three steps itself, the way scripts/kafka/up.sh does
# for the local stack:
#   1. server.properties from the service's KAFKA_* variables, with the image's naming rule
#      (KAFKA_ dropped, lower case, `_` -> `.`, `___` -> `-`, `__` -> `_`), so the broker
#      settings stay where docker-compose.yml has them;
#   2. the security settings below: SASL_SSL listeners with SCRAM-SHA-512, SSL listeners that
#      require a client certificate (mTLS), TLS from the PEM files of the kafka-secrets
#      service, the StandardAuthorizer with no access unless granted;
#   3. `kafka-storage.sh format --add-scram` (skipped once formatted), then the broker.
# `broker.sh --print-config` prints the properties of steps 1 and 2 and exits
# (test/deploy/compose.test.ts checks them).
set -euo pipefail

SECRETS="${ORDO_KAFKA_SECRETS:-/etc/ordo-kafka}"
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
SCRAM_USER="${ORDO_SCRAM_USER:-ordo}"
config_dir="${ORDO_KAFKA_CONFIG_DIR:-/tmp/ordo-kafka-config}"

# Variables the Kafka scripts read themselves, not broker properties (as the image skips them).
not_a_property() {
  case "$1" in
    *_OPTS | KAFKA_VERSION | KAFKA_HOME | KAFKA_DEBUG | KAFKA_JMX_PORT | KAFKA_JMX_HOSTNAME | KAFKA_LOG4J_* | KAFKA_TOOLS_LOG4J_*) return 0 ;;
    *) return 1 ;;
  esac
}

print_config() {
  local name key
  for name in $(compgen -e | grep '^KAFKA_' | sort); do
    not_a_property "$name" && continue
    key="${name#KAFKA_}"
    key="${key,,}"
    key="${key//_/.}"
    key="${key//.../-}"
    key="${key//../_}"
    printf '%s=%s\n' "$key" "${!name}"
  done

  # Every listener name that maps to SASL_SSL gets the SCRAM login module, every one that maps
  # to SSL requires a client certificate.
  local jaas='org.apache.kafka.common.security.scram.ScramLoginModule required;'
  local entry listener protocol
  printf 'sasl.enabled.mechanisms=SCRAM-SHA-512\n'
  IFS=',' read -ra entries <<<"${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:?KAFKA_LISTENER_SECURITY_PROTOCOL_MAP is not set}"
  for entry in "${entries[@]}"; do
    listener="${entry%%:*}"
    protocol="${entry#*:}"
    case "$protocol" in
      SASL_SSL) printf 'listener.name.%s.scram-sha-512.sasl.jaas.config=%s\n' "${listener,,}" "$jaas" ;;
      SSL) printf 'listener.name.%s.ssl.client.auth=required\n' "${listener,,}" ;;
    esac
  done
  cat <<PROPS
ssl.keystore.type=PEM
ssl.keystore.location=$SECRETS/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS;User:$SCRAM_USER;User:CN=ordo-client
PROPS
}

if [[ "${1:-}" == "--print-config" ]]; then
  print_config
  exit 0
fi

# ANONYMOUS (the PLAINTEXT and CONTROLLER listeners: the controller itself, the registry and
# the inter-broker traffic on the compose network), `ordo` (SCRAM) and CN=ordo-client (mTLS)
# are super users, as in the local stack; docs/operations.md#acls has the minimal ACLs per role
# for a cluster where Ordo's principal is not one.
mkdir -p "$config_dir"
props="$config_dir/server.properties"
print_config >"$props"

password="$(cat "$SECRETS/scram-$SCRAM_USER.password")"
echo "===> formatting storage (cluster id ${CLUSTER_ID:?CLUSTER_ID is not set}) with the SCRAM user $SCRAM_USER, unless formatted"
"$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$props" --ignore-formatted \
  --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$password]"
unset password

echo "===> starting the broker"
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$props"
