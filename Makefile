# Two commands on a fresh machine with Python >= 3.11, git and make:
#   make run    set up, migrate, create an admin user if none, start site + worker
#   make test   set up with the dev requirements and run the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# The site, its worker and their setup run in development mode unless DEBUG=0 is given (then
# SECRET_KEY must be set too: the project refuses the development key in production).
DEV := DEBUG=$${DEBUG:-1}

.PHONY: run serve test test-fast venv deps dev-deps system-deps migrate admin-user worker lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt | $(VENV)/bin/python
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.deps

venv: $(VENV)/.deps
deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

migrate: deps
	$(DEV) $(PY) manage.py migrate --noinput

admin-user: migrate
	$(DEV) $(PY) manage.py ensure_admin

# The worker runs in the background and stops with the site (Ctrl-C).
run: admin-user
	@echo "Site: http://$(HOST):$(PORT)/admin/   (worker log: run/worker.log)"
	@mkdir -p run
	@$(DEV) $(PY) manage.py worker >> run/worker.log 2>&1 & \
	  worker=$$!; trap "kill $$worker 2>/dev/null" EXIT INT TERM; \
	  $(DEV) $(PY) manage.py runserver $(HOST):$(PORT)

worker: migrate
	$(DEV) $(PY) manage.py worker

# The site under gunicorn, as on a server (docs/serving.md): the environment decides (DEBUG off
# unless given, so SECRET_KEY is required); GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_THREADS...
# Static files are collected for the reverse proxy to serve; workers are started separately.
serve: deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(VENV)/bin/gunicorn -c videoproject/gunicorn.conf.py videoproject.wsgi

# Debian packages the browser and speech tests use; installed when missing and we can
# (root or passwordless sudo), otherwise those tests skip and say why.
# pgbouncer: B6 and its quick test stand it in for RDS Proxy (bench/README.md).
SYSTEM_PACKAGES := chromium espeak-ng pgbouncer
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	test -x /usr/sbin/pgbouncer || missing="$$missing pgbouncer"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "Not installing$$missing (needs apt-get as root): those tests will skip."; \
	  else \
	    echo "Installing$$missing from Debian"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

# Four pytest-xdist workers (TEST_WORKERS=0 runs in this process), each test module on one worker,
# so a module's PostgreSQL scenario is made once; pytest-django gives each worker its own
# SQLite database, and the Celery scenarios keep their Redis keys under a prefix per process.
# Four on two cores: the suite waits more than it computes (workers polling, leases running
# out, Chromium, subprocesses starting): two workers kept 1.2 cores busy, in 551 s; four, 410 s.
TEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: dev-deps system-deps
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the tests that run ffmpeg on clips or drive Chromium (~80 s).
test-fast: dev-deps
	$(PY) -m pytest -m "not slow and not browser" $(XDIST) $(PYTEST_ARGS)

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) run media db.sqlite3*

# Benchmarks, ours against the usual way (bench/README.md): about 20 minutes on 2 idle cores;
# writes bench/results/RESULTS.md, b1.png and b5.png. BENCH_ARGS="--quick" for a smoke run.
# The whole run (no BENCH_ARGS) also runs the full outage tests (docs/faults.md, ~10 min):
# several kills of PostgreSQL and Redis under real Celery workers, six videos.
bench: dev-deps system-deps
	$(PY) bench/run.py $(BENCH_ARGS)
	$(if $(BENCH_ARGS),,FAULTS_FULL=1 $(PY) -m pytest -q -p no:cacheprovider tests/scenarios/test_outages.py)
