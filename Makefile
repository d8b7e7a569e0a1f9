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

.PHONY: install run test services chromium security bench check-scenarios clean

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
	$(VENV)/bin/bandit -q -r charting coding audit infusion_site -lll
	bash .ci/pip-audit

test: install chromium services security
	$(VENV)/bin/ruff check .
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(PY) manage.py collectstatic --noinput -v0
	$(TEST_ENV) $(PY) -m pytest

check-scenarios: install
	$(PY) ../shared/tools/check_scenarios.py --cmd "$(PY) manage.py code_scenarios" tests/scenarios/*.json

## Engine speed: coding every scenario x100 against parsing them x100 (no database).
bench: install
	$(PY) benchmarks/engine_bench.py --reps 100

clean:
	rm -rf $(VENV) node_modules staticfiles var db.sqlite3
