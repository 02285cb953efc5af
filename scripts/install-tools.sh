#!/usr/bin/env bash
# Installs the Debian tools the deployment tests use, when they are missing:
#   kubectl   (kustomize build of k8s/)
#   promtool  (prometheus package: `promtool check/test rules`, and a real Prometheus server)
#   kcat      (a second Kafka client, for manual checks)
#   openssl   (the local broker's throwaway CA and certificates, scripts/kafka/secure.sh)
#   jq        (the runbook's DLQ one-liners, run by test/docs)
# Needs root (or passwordless sudo) and Debian's archive. Safe to run again.
set -euo pipefail
missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
