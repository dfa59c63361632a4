# Two commands set everything up on a fresh machine with Python 3.11 and make:
#   make serve   serve the default model bundle from models/ on 127.0.0.1:50051
#   make test    install all three packages (torch 2.13.0 CPU) and Chromium (for the viewer's
#                browser tests, where apt-get can), run linters + tests
PYTHON ?= python3.11
DATA ?= ../shared/data/h36m
HOST ?= 127.0.0.1
PORT ?= 50051
METRICS_PORT ?= 9464
SERVE_VENV := .venv-serve
TEST_VENV := .venv
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: serve test proto lint browser clean help

help:
	@echo "make serve  - venv $(SERVE_VENV): service + client, serve models/ on $(HOST):$(PORT)"
	@echo "make test   - venv $(TEST_VENV): all three packages + dev tools, Chromium (apt-get), ruff, buf lint, pytest"
	@echo "make proto  - regenerate the committed Python stubs from proto/"

$(SERVE_VENV)/.installed: service/pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) -e clients/python -e service
	touch $@

$(TEST_VENV)/.installed: service/pyproject.toml clients/python/pyproject.toml training/pyproject.toml requirements-dev.txt clients/node/package-lock.json
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(TEST_VENV)/bin/pip install $(PIP_FLAGS) -e clients/python[plot] -e service -e training -r requirements-dev.txt
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix clients/node --no-audit --no-fund; \
	else echo "npm not found: the Node client tests will skip"; fi
	touch $@

serve: $(SERVE_VENV)/.installed
	$(SERVE_VENV)/bin/poseaug-serve --models models --host $(HOST) --port $(PORT) --metrics-port $(METRICS_PORT)

lint: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/ruff check .
	$(TEST_VENV)/bin/ruff format --check .
	$(TEST_VENV)/bin/buf lint

# Headless Chromium for the viewer's browser tests (Debian's package; they skip without it).
browser:
	@sh tests/support/install_chromium.sh

test: lint browser
	POSEAUG_H36M=$(DATA) $(TEST_VENV)/bin/python -m pytest

proto: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/python -m grpc_tools.protoc -I proto \
		--python_out=clients/python/src --pyi_out=clients/python/src \
		--grpc_python_out=clients/python/src proto/poseaug/v1/poseaug.proto

clean:
	rm -rf $(SERVE_VENV) $(TEST_VENV) .pytest_cache .ruff_cache
