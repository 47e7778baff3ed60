# The template repository's commands. `make demo` and `make test` do all set-up on a fresh machine.

PYTHON ?= python3
VENV := build/venv
DEMO_DIR := build/demo
# Tools fetched once per machine go to the user's cache, not the clone, so that the next clone (or a
# `make clean`) does not fetch them again. `make clean-cache` removes them; CACHE_DIR=build/cache keeps them
# in the clone.
CACHE_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/flask-gatekeeper
# uv (from PATH, else this version, fetched with pip from the package registry) makes virtualenvs in a
# second or two; where it cannot be had, pip does the same job, slower.
UV_VERSION := 0.13.9
UV_HOME := $(abspath $(CACHE_DIR))/uv-$(UV_VERSION)
# (Looked up once, on first use, so `make clean` and `make help` never fetch it.)
UV = $(eval UV := $(or $(shell command -v uv 2>/dev/null),$(shell test -x $(UV_HOME)/bin/uv || { \
	echo "Fetching uv $(UV_VERSION) into $(UV_HOME) (once per machine)..." >&2; \
	$(call into_cache,$(UV_HOME),$(PYTHON) -m pip install -q --disable-pip-version-check --target "$$new" uv==$(UV_VERSION)) \
	>/dev/null 2>&1; }; test -x $(UV_HOME)/bin/uv && echo $(UV_HOME)/bin/uv)))$(UV)
# The demo bakes with this cookiecutter, kept in a virtualenv of its own in the cache (remade if its Python
# is gone): a warm bake is then the bake alone, with no resolving or compiling on the way.
COOKIECUTTER_VERSION := 2.7.1
COOKIECUTTER_VENV := $(abspath $(CACHE_DIR))/cookiecutter-$(COOKIECUTTER_VERSION)
# loadgroup: tests marked xdist_group (one shared cluster of servers) stay on one worker; the rest spread.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: demo test test-quick lint format bench clean clean-cache system-packages first-migration

## demo: bake the template with its defaults into build/demo and run that project (`make run` there)
demo:
	@$(COOKIECUTTER_VENV)/bin/python -c '' 2>/dev/null || { rm -rf $(COOKIECUTTER_VENV); \
		echo "Installing cookiecutter $(COOKIECUTTER_VERSION) into $(COOKIECUTTER_VENV) (once per machine)..."; \
		$(call into_cache,$(COOKIECUTTER_VENV),$(call virtualenv,"$$new",cookiecutter==$(COOKIECUTTER_VERSION),--compile-bytecode)); }
	$(COOKIECUTTER_VENV)/bin/python -m cookiecutter --no-input -f -o $(DEMO_DIR) .
	$(MAKE) -C $(DEMO_DIR)/gatekeeper_app run UV=$(UV) PREFER_OFFLINE=1

## test: every template test: bakes, hooks, each baked project's suite, ruff, pre-commit, the browser
test: $(VENV)/.installed system-packages
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## test-quick: between edits, under 3 minutes: the fast template tests and the defaults bake's own suite
test-quick: $(VENV)/.installed
	BAKED_SUITE_WORKERS=2 $(VENV)/bin/python -m pytest -n 2 --dist loadgroup -m "not slow or quick"

## lint: ruff on the template's own code (hooks, tests, benchmarks)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## format: let ruff fix what it can
format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: gatekeeper against peer flag SDKs, requests in instructions, the dashboard at scale, make demo
bench: SYSTEM_PACKAGES += valgrind
bench: system-packages
	UV=$(UV) bash benchmarks/run.sh

## first-migration: rewrite the baked project's first migration from its models (after a model or store table changed)
first-migration: $(VENV)/.installed
	rm -rf build/migration && $(VENV)/bin/cookiecutter --no-input -f -o build/migration .
	rm -f build/migration/gatekeeper_app/migrations/versions/*.py
	$(MAKE) -C build/migration/gatekeeper_app .venv/.installed-dev UV=$(UV)
	: > build/migration/empty.db  # an empty SQLite file: the app never creates one itself
	cd build/migration/gatekeeper_app && DATABASE_URL=sqlite:///$(CURDIR)/build/migration/empty.db \
		.venv/bin/flask --app gatekeeper_app db migrate -m "users and gatekeeper tables" --rev-id 0001
	build/migration/gatekeeper_app/.venv/bin/ruff check --fix -q build/migration/gatekeeper_app/migrations
	build/migration/gatekeeper_app/.venv/bin/ruff format -q build/migration/gatekeeper_app/migrations
	rm -f '{{cookiecutter.project_slug}}'/migrations/versions/*.py
	cp build/migration/gatekeeper_app/migrations/versions/0001_*.py '{{cookiecutter.project_slug}}/migrations/versions/'

## clean: remove build/ (virtualenvs, demo project, caches)
clean:
	rm -rf build .pytest_cache .ruff_cache

## clean-cache: remove the tools `make demo` keeps in the user's cache (uv, cookiecutter): CACHE_DIR
clean-cache:
	rm -rf $(CACHE_DIR)

$(VENV)/.installed: requirements-dev.txt
	$(call virtualenv,$(VENV),-r requirements-dev.txt)
	touch $@

# $(call virtualenv,FOLDER,PIP ARGUMENTS[,UV OPTIONS]): a fresh virtualenv in FOLDER with those packages,
# by uv or pip (one shell command).
virtualenv = $(if $(UV),$(UV) venv -q --clear --seed --python $(PYTHON) $(1) && \
	$(UV) pip install -q $(3) --python $(1)/bin/python $(2),rm -rf $(1) && $(PYTHON) -m venv $(1) && \
	$(1)/bin/python -m pip install -q --disable-pip-version-check $(2))

# $(call into_cache,FOLDER,COMMAND): COMMAND fills the new folder "$$new", which then becomes FOLDER in one
# rename, so that a fetch stopped halfway, or two at once, never leaves a half-made FOLDER to be used.
into_cache = (new="$(1).$$$$.new"; rm -rf "$$new"; mkdir -p "$(dir $(1))" && { $(2); } && \
	{ test -e "$(1)" || mv "$$new" "$(1)"; }; status=$$?; rm -rf "$$new"; exit $$status)

# The browser test drives Debian's Chromium, the PostgreSQL tests start Debian's PostgreSQL server and the
# Redis change feed's tests its redis-server, the OFREP tests fetch OpenFeature's web SDK with npm; `make bench`
# also counts instructions with valgrind: install
# whichever is missing (needs root, as in CI; otherwise those tests and rows are skipped and say so).
SYSTEM_PACKAGES := chromium postgresql
system-packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	$(if $(filter valgrind,$(SYSTEM_PACKAGES)),command -v valgrind >/dev/null || missing="$$missing valgrind";) \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "note:$$missing not installed and this is not root: their tests will be skipped."; \
		echo "      Install with: sudo apt-get install -y$$missing"; \
	fi
