#!/bin/sh
# The one-shot `init` service of docker-compose.yml; everything else waits for it to succeed.
#
# 1. The sandbox PKI (python -m sandbox.pki): a CA kept in its own volume (only this container sees
#    the CA key, and later runs reuse it) and certificates for runtimes A and B, which cover
#    a-project, origin-api and their own name (sandbox/pki.py SANDBOX_NAMES).
# 2. The runtimes' certificates and keys go to the volume runtime-a and runtime-b mount, owned by the
#    image's unprivileged user; the CA certificate alone goes to the volume Kong
#    (lua_ssl_trusted_certificate, since the Service has tls_verify=true) and the worker (readiness
#    ca_bundle) mount.
# 3. Kong's file-log directory is made writable for Kong's own user (another image, another uid)
#    and readable for the worker.
# 4. The decommission receiver's state directory (runtime-a) is handed to the image's user.
#
# It runs as root for the ownership changes. Paths can be overridden through the environment, which
# tests/deploy uses to run this script outside a container.
set -eu

authority=${CUTOVER_PKI_AUTHORITY:-/var/lib/cutover/pki}
runtime_pki=${CUTOVER_RUNTIME_PKI:-/etc/cutover/pki}
ca_dir=${CUTOVER_CA_DIR:-/etc/cutover/ca}
kong_logs=${CUTOVER_KONG_LOGS:-/var/log/kong}
receiver_state=${CUTOVER_RECEIVER_STATE_DIR:-/var/lib/cutover/receiver}
runtime_user=${CUTOVER_RUNTIME_USER:-cutover}
python=${PYTHON:-python}

mkdir -p "$authority" "$runtime_pki" "$ca_dir" "$kong_logs" "$receiver_state"
"$python" -m sandbox.pki --dir "$authority" >/dev/null

for runtime in A B; do
	cp "$authority/$runtime.pem" "$runtime_pki/$runtime.pem"
	cp "$authority/$runtime.key" "$runtime_pki/$runtime.key"
	chmod 0644 "$runtime_pki/$runtime.pem"
	chmod 0600 "$runtime_pki/$runtime.key"
done
cp "$authority/ca.pem" "$ca_dir/ca.pem"
chmod 0644 "$ca_dir/ca.pem"
if [ "$(id -u)" = 0 ] && id "$runtime_user" >/dev/null 2>&1; then
	chown "$runtime_user:$runtime_user" "$runtime_pki"/*.pem "$runtime_pki"/*.key "$receiver_state"
fi

# Sticky and world-writable, like /tmp: Kong's user creates file-log.json (mode 0644), the worker reads it.
chmod 1777 "$kong_logs"

echo "init: CA $ca_dir/ca.pem, certificates for A and B in $runtime_pki, Kong log directory $kong_logs"
