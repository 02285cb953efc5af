# Shared settings for scripts/kafka/*.sh (sourced, not run).
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="${ORDO_LOCAL_DIR:-$repo_root/.local}"
KAFKA_DIR="$LOCAL_DIR/kafka"
REGISTRY_DIR="$LOCAL_DIR/registry"
# The registry's schemas (an H2 file database): they belong with the broker's data.
REGISTRY_DATA_DIR="$REGISTRY_DIR/data"
KAFKA_VERSION="${ORDO_KAFKA_VERSION:-4.3.1}"
REGISTRY_VERSION="${ORDO_REGISTRY_VERSION:-3.3.3}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
# The broker's secured listeners (next to PLAINTEXT) and the JWKS its OAUTHBEARER checks.
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 3))}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 4))}"
KAFKA_JWKS_PORT="${KAFKA_JWKS_PORT:-$((KAFKA_PORT + 5))}"
SECURITY_DIR="$KAFKA_DIR/security"
JWKS_URL="http://127.0.0.1:$KAFKA_JWKS_PORT/jwks.json"
REGISTRY_MANAGEMENT_PORT="${REGISTRY_MANAGEMENT_PORT:-$((REGISTRY_PORT + 10))}"

# Prints the path of a java whose feature version is >= $1.
find_java() {
  local want="$1" candidate v
  for candidate in ${ORDO_JAVA_FOR_REGISTRY:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -x "$candidate" ]] || continue
    v="$("$candidate" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    if [[ -n "$v" && "${v%%.*}" -ge "$want" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}
