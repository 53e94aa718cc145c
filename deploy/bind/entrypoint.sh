#!/bin/sh
# Entrypoint of bind-primary and bind-secondary in docker-compose.yml, then `exec "$@"` (named).
#
# named.conf cannot read the environment, so the TSIG key file is rendered here from
# CUTOVER_TSIG_SECRET (deploy/secrets.env) into a tmpfs, readable by root and group bind only.
# The primary serves a writable copy of deploy/bind/example.test.db (named keeps its journal beside
# the zone file and dumps updates into it); the copy is made once, so a restart keeps the cutover's
# changes. Paths can be overridden through the environment, which tests/deploy uses to run this script
# outside a container.
set -eu

key_template=${CUTOVER_KEY_TEMPLATE:-/etc/cutover/bind/update-key.conf.template}
key_file=${CUTOVER_KEY_FILE:-/run/cutover/update-key.conf}
zone_seed=${CUTOVER_ZONE_SEED:-}
zone_file=${CUTOVER_ZONE_FILE:-}
data_dir=${CUTOVER_BIND_DATA:-/var/lib/bind}

secret=${CUTOVER_TSIG_SECRET:-}
if [ -z "$secret" ]; then
	echo "CUTOVER_TSIG_SECRET is not set: put it in deploy/secrets.env (see docs/deploy.md)" >&2
	exit 2
fi
case $secret in
*[!A-Za-z0-9+/=]*)
	# Anything else could end the quoted string and inject configuration into named.conf.
	echo "CUTOVER_TSIG_SECRET must be base64 (A-Z a-z 0-9 + / =): check deploy/secrets.env" >&2
	exit 2
	;;
esac

mkdir -p "$(dirname "$key_file")"
old_umask=$(umask)
umask 027
sed "s|@CUTOVER_TSIG_SECRET@|$secret|" "$key_template" >"$key_file"
umask "$old_umask"

if [ -n "$zone_seed" ]; then
	if [ -z "$zone_file" ]; then
		echo "CUTOVER_ZONE_SEED is set but CUTOVER_ZONE_FILE is not" >&2
		exit 2
	fi
	if [ ! -e "$zone_file" ]; then
		cp "$zone_seed" "$zone_file"
		echo "seeded $zone_file from $zone_seed"
	else
		echo "keeping $zone_file (the zone as cutover left it); 'docker compose down -v' starts over"
	fi
fi

# named drops to user bind (-u bind) after reading its configuration: give it the key and its data.
if [ "$(id -u)" = 0 ] && id bind >/dev/null 2>&1; then
	chown root:bind "$key_file"
	chown -R bind:bind "$data_dir"
fi

exec "$@"
