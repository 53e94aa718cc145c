#!/bin/sh
# runtime-a in docker-compose.yml: project A and the API that deletes it, in one container, like
# the platform A runs on.
#
#   project-a.sh RUNTIME_COMMAND...      e.g. python -m sandbox.runtime --name A --listen 0.0.0.0:8443 ...
#
# RUNTIME_COMMAND runs in the background in its own session (the receiver stops its process group)
# and its pid goes to CUTOVER_RUNTIME_PID_FILE. This shell then becomes the sandbox's decommission
# receiver (python -m sandbox.decommission_receiver): the plans' webhook decommission "deletes
# project A" there, which stops the runtime process for real while the container keeps running, and
# the plans' notify webhook posts there too. The receiver requires requests signed (X-Cutover-Signature,
# HMAC-SHA256) with the key in CUTOVER_DECOMMISSION_AUTH (deploy/secrets/decommission.env).
set -eu

listen=${CUTOVER_RECEIVER_LISTEN:-0.0.0.0:8088}
state=${CUTOVER_RECEIVER_STATE:-/var/lib/cutover/receiver/state.json}
runtime_address=${CUTOVER_RUNTIME_ADDRESS:-127.0.0.1:8443}
pid_file=${CUTOVER_RUNTIME_PID_FILE:-/run/cutover/runtime-A.pid}
python=${PYTHON:-python}

if [ "$#" -eq 0 ]; then
	echo "usage: project-a.sh RUNTIME_COMMAND..." >&2
	exit 2
fi
if [ -z "${CUTOVER_DECOMMISSION_AUTH:-}" ]; then
	echo "CUTOVER_DECOMMISSION_AUTH is not set: run sh deploy/make-secrets.sh (see docs/deploy.md)" >&2
	exit 2
fi

mkdir -p "$(dirname "$pid_file")" "$(dirname "$state")"
# Not a process group leader here, so setsid execs in place: $! is the runtime's own pid.
setsid "$@" &
echo "$!" >"$pid_file"
exec "$python" -m sandbox.decommission_receiver --listen "$listen" --pid-file "$pid_file" \
	--runtime-address "$runtime_address" --signing-secret-env CUTOVER_DECOMMISSION_AUTH --state "$state"
