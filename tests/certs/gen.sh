#!/bin/sh
# Test certificates for test_tls and the TLS config tests, made at test time
# (no private key is committed). Usage: gen.sh DIR. Needs certtool (gnutls-bin).
#   ca.pem/ca.key          test CA
#   server.pem/server.key  leaf for a.test and b.test, signed by the CA
#   chain.pem              server.pem then ca.pem (a full chain, right order)
#   badorder.pem           ca.pem then server.pem (wrong order)
#   other.pem/other.key    leaf for c.test (a second SNI certificate)
#   expired.pem            leaf that expired in 2020 (key: server.key)
#   future.pem             leaf valid from 2090 (key: server.key)
#   mismatch.key           a key that matches no certificate
#   client.pem/client.key  client certificate from the CA (CN=client-one)
#   rogue.pem/rogue.key    client certificate from another CA (rogue-ca.pem)
#   ticket.key             64 random bytes (a session ticket key)
set -eu
d=$1
mkdir -p "$d"
cd "$d"
ct() { certtool "$@" >/dev/null 2>&1; }
key() { ct --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$1"; chmod 600 "$1"; }

key ca.key
cat > ca.tmpl <<T
cn = "hapax test CA"
ca
cert_signing_key
expiration_days = 3650
T
ct --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem

key rogue-ca.key
sed 's/hapax test CA/rogue CA/' ca.tmpl > rogue-ca.tmpl
ct --generate-self-signed --load-privkey rogue-ca.key --template rogue-ca.tmpl --outfile rogue-ca.pem

leaf() { # name template-extra key out ca cakey
    printf '%s\n' "$2" > "$1.tmpl"
    ct --generate-certificate --load-privkey "$3" --load-ca-certificate "$5" \
       --load-ca-privkey "$6" --template "$1.tmpl" --outfile "$4"
}
key server.key
srv='cn = "a.test"
dns_name = "a.test"
dns_name = "b.test"
tls_www_server
signing_key
encryption_key'
leaf server "$srv
expiration_days = 3650" server.key server.pem ca.pem ca.key
cat server.pem ca.pem > chain.pem
cat ca.pem server.pem > badorder.pem

key other.key
leaf other 'cn = "c.test"
dns_name = "c.test"
tls_www_server
signing_key
expiration_days = 3650' other.key other.pem ca.pem ca.key

leaf expired "$srv
activation_date = \"2019-01-01 00:00:00\"
expiration_date = \"2020-01-01 00:00:00\"" server.key expired.pem ca.pem ca.key
leaf future "$srv
activation_date = \"2090-01-01 00:00:00\"
expiration_date = \"2095-01-01 00:00:00\"" server.key future.pem ca.pem ca.key

key mismatch.key

cli='cn = "client-one"
tls_www_client
signing_key
expiration_days = 3650'
key client.key
leaf client "$cli" client.key client.pem ca.pem ca.key
key rogue.key
leaf rogue "$cli" rogue.key rogue.pem rogue-ca.pem rogue-ca.key

head -c 64 /dev/urandom > ticket.key
chmod 600 ticket.key
rm -f ./*.tmpl
