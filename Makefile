# Chairside: `make run` serves the demo; `make test` runs the whole suite.
# Both set themselves up from a fresh clone (venv, pip, npm, system packages).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_ENV := CHAIRSIDE_DEMO=1 DEBUG=1
# Overridable, e.g. to run two checkouts' suites side by side:
#   make test TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_b TEST_BROKER_URL=redis://127.0.0.1:6379/14
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chairside
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz

.PHONY: install run test services chromium wrk security bench check-scenarios clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

## Demo: SQLite + kombu filesystem broker, no servers needed.
run: install
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py setup_demo
	$(DEMO_ENV) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile

## Browser tests drive Debian's chromium (never a downloaded browser build).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## PostgreSQL and Redis on this machine; started when they are down.
services:
	@bash .ci/services

## CFG-5: bandit fails on any high-severity finding; pip-audit on any known
## vulnerability of a pinned package (see .ci/pip-audit).
security: install
	$(VENV)/bin/bandit -q -r charting coding audit infusion_site reports -lll
	bash .ci/pip-audit

test: install chromium services security
	$(VENV)/bin/ruff check .
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(PY) manage.py collectstatic --noinput -v0
	$(TEST_ENV) $(PY) -m pytest

check-scenarios: install
	$(PY) ../shared/tools/check_scenarios.py --cmd "$(PY) manage.py code_scenarios" tests/scenarios/*.json

## Every benchmark prints one line `name: ratio=R ...` (a ratio against a floor
## measured in the same run). engine: coding every scenario x100 against parsing
## them x100 (no database). sweep: the flag sweep over ~1,000,000 generated
## administrations against one SQL statement computing the same flags (the data
## are generated once into the database chairside_bench, then reused).
## startstop / chart: p95 of start+stop requests / of the encounter page under 50
## clients (wrk) against the bare /healthz/ view, same gunicorn, same run.
## export: the administrations CSV view (500,000 rows, gunicorn) against psql \copy
## of the same SELECT, on its own database (chairside_bench_export, made when missing).
## celery: 10,000 per-encounter flag computations as tasks (chunks of 500, one
## worker) against the same function in a loop.
bench: install services wrk
	$(PY) benchmarks/engine_bench.py --reps 100
	$(PY) benchmarks/sweep_bench.py
	$(PY) benchmarks/export_bench.py --rows 500000
	$(PY) benchmarks/http_bench.py
	$(PY) benchmarks/celery_bench.py

## The load generator of the request benchmarks, from Debian's packages.
wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

clean:
	rm -rf $(VENV) node_modules staticfiles var db.sqlite3
