#!/usr/bin/env bash
# Self-signed CA + SuperLink server certificate for a TLS Flower deployment (openssl only).
#
#   bash scripts/make_certs.sh [DIR]            # default DIR=certs
#   SUPERLINK_SAN="IP:10.0.0.5,DNS:link.example" bash scripts/make_certs.sh certs
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/server.pem, DIR/server.key. The server certificate's
# subjectAltName always covers IP:127.0.0.1 and DNS:localhost, plus SUPERLINK_SAN (the
# address SuperNodes and the flwr CLI use to reach the SuperLink on other machines).
#   SuperLink : --ssl-ca-certfile DIR/ca.crt --ssl-certfile DIR/server.pem --ssl-keyfile DIR/server.key
#   SuperNode : --root-certificates DIR/ca.crt
#   flwr CLI  : root-certificates = "<abs>/DIR/ca.crt" in the connection of $FLWR_HOME/config.toml
#   local     : fedtna-deploy --certs DIR ...  (add --auth for SuperNode authentication, which needs TLS)
# Keep ca.key and server.key private; existing files are replaced.
set -euo pipefail

DIR="${1:-certs}"
DAYS="${CERT_DAYS:-365}"
SAN="IP:127.0.0.1,DNS:localhost${SUPERLINK_SAN:+,${SUPERLINK_SAN}}"

command -v openssl >/dev/null || { echo "make_certs.sh: openssl not found" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
umask 077

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -nodes -key ca.key -sha256 -days "$DAYS" -subj "/CN=fedtna-ca" -out ca.crt

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
openssl req -new -key server.key -subj "/CN=fedtna-superlink" -out server.csr
cat > server.ext <<EOF
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${SAN}
EOF
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" -sha256 \
    -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.crt server.pem

openssl verify -CAfile ca.crt server.pem >/dev/null
echo "certificates in $(pwd): ca.crt server.pem server.key (SAN: ${SAN})"
