#!/bin/sh
# kong-migrations in docker-compose.yml: prepare Kong's Postgres database, then seed it once.
#
#   seed.sh DECLARATIVE_FILE...     e.g. /etc/cutover/seed/services.yaml /etc/cutover/kong/file-log.yaml
#
# `kong migrations list` tells the database's state by its exit code (kong/cmd/migrations.lua):
#   3  empty: bootstrap it, then import each file with `kong config db_import` (upserts, in order);
#   0  up to date: import nothing. A re-import would undo what a cutover changed through the Admin
#      API (the alias strategy repoints the Service's host), so the seed is applied exactly once;
#      `docker compose down -v` starts over;
#   4  pending migrations: finish them;  5  new migrations (newer Kong image): run them, then finish.
# Run it once per `up` (restart: "no"): a retry after a failed import would find the database
# bootstrapped and skip the seed.
set -eu

if [ "$#" -eq 0 ]; then
	echo "usage: seed.sh DECLARATIVE_FILE..." >&2
	exit 2
fi
for file in "$@"; do
	if [ ! -r "$file" ]; then
		echo "seed file $file is missing: check the volumes of kong-migrations" >&2
		exit 2
	fi
done

set +e
kong migrations list >/dev/null 2>&1
state=$?
set -e

case $state in
3)
	kong migrations bootstrap
	# db_import reads the node's configuration from a prepared prefix, which a one-shot container lacks.
	kong prepare
	for file in "$@"; do
		if ! kong config db_import "$file"; then
			echo "importing $file failed after the bootstrap: fix it, then start over with 'docker compose down -v'" >&2
			exit 1
		fi
	done
	echo "Kong database bootstrapped and seeded from: $*"
	;;
0)
	echo "Kong database already bootstrapped: seed not re-imported (it would undo a cutover's changes)"
	;;
4)
	kong migrations finish
	;;
5)
	kong migrations up
	kong migrations finish
	;;
*)
	echo "kong migrations list failed with exit code $state (is kong-db reachable?)" >&2
	exit "$state"
	;;
esac
