# Tollgate. The README names two commands: `make dev` and `make test`.
# Both work on a machine that has only python3: uv is installed through pip when missing.

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
# Trust the machine's certificate store (corporate proxies install their CA there).
export UV_SYSTEM_CERTS ?= 1
PYTEST_WORKERS ?= 4
SOURCES := shared/src gateway/src services/keys/src deploy/local/src

.PHONY: dev test e2e lint fmt bootstrap

bootstrap:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet --user uv 2>/dev/null || \
		python3 -m pip install --quiet uv 2>/dev/null || \
		python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --all-packages --locked --quiet

## Start PostgreSQL, NATS, the services, the gateway and a demo API; Ctrl-C stops everything.
dev: bootstrap
	$(UV) run tollgate-dev up

## Every test: unit, service, gateway, deployment files and the whole stack end to end.
test: bootstrap
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadfile

## Only the whole-stack tests (real processes through the gateway).
e2e: bootstrap
	$(UV) run pytest tests-e2e

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy $(SOURCES)

fmt: bootstrap
	$(UV) run ruff format .
	$(UV) run ruff check --fix .
