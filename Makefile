# Tollgate. The README names two commands: `make dev` and `make test`.
# Both work on a machine that has only python3: uv is installed through pip when missing.

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
# Trust the machine's certificate store (corporate proxies install their CA there).
export UV_SYSTEM_CERTS ?= 1
PYTEST_WORKERS ?= 4
SOURCES := shared/src gateway/src services/keys/src services/metering/src services/billing/src \
	deploy/local/src

.PHONY: dev test e2e lint fmt bootstrap bench-gateway bench-limits bench-limiter \
	bench-metering-consumer bench-metering

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

## Gateway vs nginx proxy_pass vs the upstream alone under wrk, then a py-spy profile of the
## gateway (docs/performance.md). wrk and nginx come from Debian packages, installed when
## missing; py-spy from PyPI for this run only. Options: make bench-gateway BENCH_ARGS="--help".
BENCH_ARGS ?=
bench-gateway: bootstrap
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing$$missing"; \
		$$sudo apt-get update -q && $$sudo apt-get install -y -q $$missing; \
	fi
	$(UV) run --with py-spy==0.4.3 python bench/gateway_vs_nginx.py $(BENCH_ARGS)

## Rate-limit accuracy over 4 gateway replicas and revocation propagation to all of them
## (bench/rate_limits_and_revocation.py, about 2 minutes). Nothing to install beyond the uv
## environment. Options: make bench-limits BENCH_ARGS="--help".
bench-limits: bootstrap
	$(UV) run python bench/rate_limits_and_revocation.py $(BENCH_ARGS)

## One rate-limit decision in-process against JetStream KV: lease hit vs lease refill, in µs.
bench-limiter: bootstrap
	$(UV) run python bench/limiter_decision.py $(BENCH_ARGS)

## Metering's USAGE consumer draining a backlog: one message per transaction vs one batch per
## transaction, in events/s. Uses TOLLGATE_DATABASE_URL (a fresh database on that server) and
## TOLLGATE_NATS_URL, else embedded servers. Options: BENCH_ARGS="--help".
bench-metering-consumer: bootstrap
	$(UV) run python bench/metering_usage_consumer.py $(BENCH_ARGS)

## Metering end to end in one run: raw ceilings (JetStream publish+consume, PostgreSQL COPY),
## durable ingestion through HTTP batches and the USAGE stream into a real metering process
## (each checked stored once), event-to-queryable latency, and usage query latency over a seeded
## history of 100 million events' worth of rollups (docs/performance.md; 10-15 minutes).
## Options: BENCH_ARGS="--quick" for a smoke run, BENCH_ARGS="--help" for the rest.
bench-metering: bootstrap
	$(UV) run python bench/metering_end_to_end.py $(BENCH_ARGS)
