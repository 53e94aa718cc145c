#!/bin/sh
# Create the secrets docker-compose.yml reads, once, with fresh random values:
#
#   deploy/secrets/tsig.env          CUTOVER_TSIG_SECRET: the TSIG key the worker signs UPDATEs with;
#                                    bind-primary and bind-secondary render their key file from it.
#   deploy/secrets/decommission.env  CUTOVER_DECOMMISSION_AUTH: the HMAC key the worker signs its webhook
#                                    decommission with and the receiver in runtime-a verifies (never sent).
#
# Each service gets only the file it needs (env_file). Existing files are kept: rotating a secret
# means deleting its file and running this again, then `docker compose up -d` (the services that
# read it are recreated). Nothing here enters the image (.dockerignore excludes deploy/).
#
#   sh deploy/make-secrets.sh [DIRECTORY]        default: deploy/secrets next to this script
set -eu

directory=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$directory"

random_base64() {
	head -c "$1" /dev/urandom | base64 | tr -d '\n'
}

write_once() {
	file=$directory/$1
	if [ -e "$file" ]; then
		echo "keeping $file"
		return
	fi
	printf '%s=%s\n' "$2" "$3" >"$file"
	echo "wrote $file ($2)"
}

write_once tsig.env CUTOVER_TSIG_SECRET "$(random_base64 32)"
write_once decommission.env CUTOVER_DECOMMISSION_AUTH "$(random_base64 24 | tr '+/' '-_' | tr -d '=')"
