#!/usr/bin/env bash
# The one-shot `kafka-secrets` service of docker-compose.secured.yml: makes the secured
# broker's throwaway security material into two named volumes, once (a second run finds it and
# exits 0; `docker compose ... down -v` deletes it, the next `up` makes fresh material).
#
#   $BROKER_DIR (volume kafka-secrets-broker, mounted read-only by `kafka` only):
#     ca.pem                the test CA (truststore of the SSL listeners: client certificates)
#     broker-keystore.pem   the broker's key (unencrypted PKCS#8) followed by its certificate,
#                           SAN DNS:kafka, DNS:localhost, IP:127.0.0.1 (Kafka's PEM keystore)
#     scram-ordo.password   the SCRAM-SHA-512 password of the user `ordo` (added at format time)
#     admin.properties      a SASL_SSL client config as `ordo`, for the broker's health check
#   $CLIENT_DIR (volume kafka-secrets-client, mounted read-only by Ordo's roles):
#     ca.crt                the same CA (KAFKA_SSL_CA_FILE)
#     sasl-password         the same password (KAFKA_SASL_PASSWORD_FILE)
#     client.crt, client.key  a client certificate CN=ordo-client and its key, for the mTLS
#                           listener (KAFKA_SECURITY_PROTOCOL=SSL, KAFKA_SSL_CERT_FILE/_KEY_FILE)
#
# Same material as scripts/kafka/secure.sh makes for `npm run kafka:up` (which runs on the host
# and names the broker 127.0.0.1/localhost; this one names it `kafka` on the compose network).
# Runs as root in the apache/kafka image (openssl comes with its Eclipse Temurin Alpine base),
# so that it can hand each volume to the user that reads it: the broker's files to the image's
# `appuser`, the client's to Ordo's image user (Dockerfile: USER 1000:1000). Never use this
# material anywhere but on a throwaway stack.
set -euo pipefail

BROKER_DIR="${BROKER_DIR:-/secrets/broker}"
CLIENT_DIR="${CLIENT_DIR:-/secrets/client}"
# Where the broker container mounts $BROKER_DIR (admin.properties names files by that path).
BROKER_MOUNT="${BROKER_MOUNT:-/etc/ordo-kafka}"
BROKER_HOST="${BROKER_HOST:-kafka}"
SCRAM_USER="${SCRAM_USER:-ordo}"
ORDO_UID="${ORDO_UID:-1000}"
ORDO_GID="${ORDO_GID:-1000}"
KAFKA_UID="${KAFKA_UID:-$(id -u appuser 2>/dev/null || id -u)}"
KAFKA_GID="${KAFKA_GID:-$(id -g appuser 2>/dev/null || id -g)}"

log() { printf 'kafka-secrets: %s\n' "$*"; }

if [[ -f "$BROKER_DIR/.complete" && -f "$CLIENT_DIR/.complete" ]]; then
  log "material already in place (docker compose ... down -v for fresh material)"
  exit 0
fi
command -v openssl >/dev/null || { log "openssl not found in this image" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
ossl() { openssl "$@" 2>>openssl.log || { cat openssl.log >&2; exit 1; }; }

log "making a throwaway CA, the broker's and a client certificate, and the SCRAM password"
ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -subj "/CN=Ordo compose test CA" \
  -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
leaf() { # name, subject, extensions
  ossl req -newkey rsa:2048 -nodes -sha256 -subj "$2" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 -extfile "$1.ext" -out "$1.pem"
}
leaf broker "/CN=$BROKER_HOST" "subjectAltName=DNS:$BROKER_HOST,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
leaf client "/CN=ordo-client" "extendedKeyUsage=clientAuth"
password="$(openssl rand -hex 24)"

mkdir -p "$BROKER_DIR" "$CLIENT_DIR"
rm -f "$BROKER_DIR/.complete" "$CLIENT_DIR/.complete"
(umask 077
  cp ca.pem "$BROKER_DIR/ca.pem"
  cat broker.key broker.pem >"$BROKER_DIR/broker-keystore.pem"
  printf '%s\n' "$password" >"$BROKER_DIR/scram-ordo.password"
  cat >"$BROKER_DIR/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SCRAM_USER" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$BROKER_MOUNT/ca.pem
PROPS
  cp ca.pem "$CLIENT_DIR/ca.crt"
  printf '%s\n' "$password" >"$CLIENT_DIR/sasl-password"
  cp client.pem "$CLIENT_DIR/client.crt"
  cp client.key "$CLIENT_DIR/client.key"
)
chown -R "$KAFKA_UID:$KAFKA_GID" "$BROKER_DIR"
chown -R "$ORDO_UID:$ORDO_GID" "$CLIENT_DIR"
chmod 0500 "$BROKER_DIR" "$CLIENT_DIR"
chmod 0400 "$BROKER_DIR"/* "$CLIENT_DIR"/*
chmod 0444 "$BROKER_DIR/ca.pem" "$CLIENT_DIR/ca.crt"
chmod u+w "$BROKER_DIR" "$CLIENT_DIR"
touch "$BROKER_DIR/.complete" "$CLIENT_DIR/.complete"
chmod u-w "$BROKER_DIR" "$CLIENT_DIR"
log "done: broker material in $BROKER_DIR, client material in $CLIENT_DIR"
