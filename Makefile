# Two commands matter on a fresh Debian/Ubuntu machine:
#   make demo   - the main job: a whole cutover on loopback (BIND, Temporal, Kong emulator, A and B)
#   make test   - lint, type-check and the whole test suite
# Both install what they need first (bind9 from apt, a venv with the Python dependencies).

VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: setup demo-setup bind-deps prometheus-deps compose-deps kong-lua-deps test lint demo clean

bind-deps:
	@command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || { \
		echo "installing bind9 (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bind9 >/dev/null; }

prometheus-deps:
	@command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || { \
		echo "installing prometheus (apt-get): the promql telemetry tests run a real Prometheus server"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

compose-deps:
	@{ [ -f /usr/lib/python3/dist-packages/compose/config/compose_spec.json ] && command -v docker-compose >/dev/null 2>&1; } || { \
		echo "installing docker-compose (apt-get): tests/deploy use its Compose schema and offline 'config'"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }

# Kong's own DNS client code runs under nginx in tests/kong_conformance (Lua from ../shared/kong-lua).
KONG_LUA_PACKAGES := nginx-core libnginx-mod-http-lua lua-resty-core lua-resty-lrucache lua-penlight lua-cjson lua-filesystem
kong-lua-deps:
	@missing=""; for p in $(KONG_LUA_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || { \
		echo "installing$$missing (apt-get): the Kong DNS conformance suite runs Kong's client under nginx"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "cutover needs Python 3.11 or newer"; exit 1; }; \
		echo "installing python3-venv (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

# demo needs BIND and the venv; the tests also validate docker-compose.yml with Debian's docker-compose
# and run a real Prometheus for the promql source.
demo-setup: bind-deps $(STAMP)

setup: bind-deps prometheus-deps compose-deps kong-lua-deps $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: lint
	$(VENV)/bin/pytest -q --durations=15

demo: demo-setup
	$(VENV)/bin/python -m sandbox.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info .demo
