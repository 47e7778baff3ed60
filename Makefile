# The template repository's commands. `make demo` and `make test` do all set-up on a fresh machine.

PYTHON ?= python3
VENV := build/venv
DEMO_VENV := build/demo-venv
DEMO_DIR := build/demo
# uv (from PATH, else installed into build/uv from the package registry) makes virtualenvs in a second or
# two; where it cannot be had, pip does the same job, slower.
UV_HOME := build/uv
# (Looked up once, on first use, so `make clean` and `make help` never fetch it.)
UV = $(eval UV := $(or $(shell command -v uv 2>/dev/null),$(shell test -x $(UV_HOME)/bin/uv || \
	$(PYTHON) -m pip install -q --disable-pip-version-check --target $(UV_HOME) uv >/dev/null 2>&1; \
	test -x $(UV_HOME)/bin/uv && echo $(abspath $(UV_HOME))/bin/uv)))$(UV)
# loadgroup: tests marked xdist_group (one shared cluster of servers) stay on one worker; the rest spread.
PYTEST_ARGS ?= -n 2 --dist loadgroup
COOKIECUTTER := $(shell grep -E '^cookiecutter' requirements-dev.txt)

.PHONY: demo test lint format bench clean system-packages first-migration

## demo: bake the template with its defaults into build/demo and run that project (`make run` there)
demo:
	$(if $(UV),$(UV) tool run --from "$(COOKIECUTTER)" ,$(MAKE) $(DEMO_VENV)/.installed && $(DEMO_VENV)/bin/)cookiecutter --no-input -f -o $(DEMO_DIR) .
	$(MAKE) -C $(DEMO_DIR)/gatekeeper_app run UV=$(UV)

## test: every template test: bakes, hooks, each baked project's suite, ruff, pre-commit, the browser
test: $(VENV)/.installed system-packages
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## lint: ruff on the template's own code (hooks, tests, benchmarks)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## format: let ruff fix what it can
format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: gatekeeper against peer flag SDKs, and the dashboard at scale
bench:
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

$(VENV)/.installed: requirements-dev.txt
	$(call virtualenv,$(VENV),-r requirements-dev.txt)
	touch $@

$(DEMO_VENV)/.installed: requirements-dev.txt
	$(call virtualenv,$(DEMO_VENV),"$(COOKIECUTTER)")
	touch $@

# $(call virtualenv,FOLDER,PIP ARGUMENTS): a fresh virtualenv in FOLDER with those packages, by uv or pip.
define virtualenv
	$(if $(UV),$(UV) venv -q --clear --seed --python $(PYTHON) $(1),rm -rf $(1) && $(PYTHON) -m venv $(1))
	$(if $(UV),$(UV) pip install -q --python $(1)/bin/python $(2),$(1)/bin/python -m pip install -q --disable-pip-version-check $(2))
endef

# The browser test drives Debian's Chromium and the PostgreSQL test starts Debian's PostgreSQL server:
# install whichever is missing (needs root, as in CI; otherwise those tests are skipped and say so).
system-packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "note:$$missing not installed and this is not root: their tests will be skipped."; \
		echo "      Install with: sudo apt-get install -y$$missing"; \
	fi
