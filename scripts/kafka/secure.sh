#!/usr/bin/env bash
# Makes the local broker's throwaway security material (sourced by up.sh, not run alone):
# a test CA, the broker's certificate (SAN 127.0.0.1 + localhost), a client certificate for
# mTLS (key encrypted with a passphrase file), a second CA nobody trusts (for the
# "untrusted CA" test), an RSA key that signs OAUTHBEARER tokens with its JWKS, and random
# SCRAM passwords. Everything is cached in $SECURITY_DIR and made once; delete the
# directory (or run down.sh with ORDO_KAFKA_WIPE=1) for fresh ones. Never use these anywhere
# but on 127.0.0.1.
#
# Defines: security_broker_properties (prints the broker's security settings),
#          security_scram_args (StorageTool --add-scram arguments),
#          security_write_stack_json (what the tests read to connect).

make_security_material() {
  local d="$SECURITY_DIR"
  if [[ -f "$d/.complete" ]]; then return 0; fi
  log "making a throwaway CA, certificates and SCRAM passwords in $d"
  rm -rf "$d" && mkdir -p "$d" && chmod 700 "$d"
  (
    cd "$d"
    ossl() { openssl "$@" 2>>openssl.log; }
    ca() { # name, subject
      ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "$2" \
        -keyout "$1.key" -out "$1.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    }
    leaf() { # name, subject, extensions
      ossl req -newkey rsa:2048 -nodes -sha256 -subj "$2" -keyout "$1.key" -out "$1.csr"
      printf '%s\n' "$3" >"$1.ext"
      ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile "$1.ext" -out "$1.pem"
      rm -f "$1.csr" "$1.ext"
    }
    ca ca "/CN=Ordo local test CA"
    ca untrusted-ca "/CN=Ordo untrusted test CA"
    leaf broker "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
    leaf client "/CN=ordo-client" "extendedKeyUsage=clientAuth"
    # Kafka reads a PEM keystore as the (unencrypted PKCS#8) key followed by the chain.
    cat broker.key broker.pem >broker-keystore.pem
    # The client key as operators usually get it: encrypted, passphrase in a file.
    openssl rand -hex 16 >client-key.passphrase
    ossl pkcs8 -topk8 -v2 aes-256-cbc -in client.key -passout file:client-key.passphrase -out client-encrypted.key
    # OAUTHBEARER: the key the test's token endpoint signs with, and its public JWKS.
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out oauth.key
    node -e '
      const { createPrivateKey, createPublicKey } = require("node:crypto");
      const fs = require("node:fs");
      const jwk = createPublicKey(createPrivateKey(fs.readFileSync("oauth.key"))).export({ format: "jwk" });
      fs.writeFileSync("jwks.json", JSON.stringify({ keys: [{ ...jwk, kid: "ordo-local", alg: "RS256", use: "sig" }] }));'
    for user in ordo ordo-acl; do openssl rand -hex 16 >"scram-$user.password"; done
    chmod 600 ./*
  )
  touch "$d/.complete"
}

security_scram_args() {
  local user
  for user in ordo ordo-acl; do
    printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n' "$user" "$(cat "$SECURITY_DIR/scram-$user.password")"
    printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s]\n' "$user" "$(cat "$SECURITY_DIR/scram-$user.password")"
  done
}

# Principals the local tests connect as: ANONYMOUS (PLAINTEXT, every other test), `ordo`
# (SCRAM), CN=ordo-client (mTLS) and ordo-oauth (the OAUTHBEARER client's `sub`) are super
# users; `ordo-acl` has only the ACLs a test grants it.
security_broker_properties() {
  local jaas='org.apache.kafka.common.security.scram.ScramLoginModule required;'
  cat <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$jaas
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=$JWKS_URL
sasl.oauthbearer.expected.audience=ordo-local-kafka
sasl.oauthbearer.expected.issuer=ordo-local-idp
ssl.keystore.type=PEM
ssl.keystore.location=$SECURITY_DIR/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECURITY_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS;User:ordo;User:CN=ordo-client;User:ordo-oauth
PROPS
}

# Serves the OAUTHBEARER JWKS on 127.0.0.1 (node -e "$jwks_server" <port> <jwks.json>).
# shellcheck disable=SC2016
jwks_server='
const [port, file] = process.argv.slice(1);
const body = require("node:fs").readFileSync(file);
require("node:http").createServer((req, res) => {
  if (req.method === "GET" && req.url === "/jwks.json") res.writeHead(200, { "content-type": "application/json" }).end(body);
  else res.writeHead(404).end();
}).listen(Number(port), "127.0.0.1");'

security_write_stack_json() {
  cat >"$SECURITY_DIR/stack.json" <<JSON
{
  "plaintext": "127.0.0.1:$KAFKA_PORT",
  "saslSsl": "127.0.0.1:$KAFKA_SASL_SSL_PORT",
  "ssl": "127.0.0.1:$KAFKA_SSL_PORT",
  "jwksUrl": "$JWKS_URL",
  "oauth": { "issuer": "ordo-local-idp", "audience": "ordo-local-kafka", "kid": "ordo-local", "superUser": "ordo-oauth" },
  "scramUsers": { "super": "ordo", "limited": "ordo-acl" },
  "mtlsPrincipal": "User:CN=ordo-client"
}
JSON
}
