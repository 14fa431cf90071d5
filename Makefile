# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# `make serve PORT=9000 HOST=0.0.0.0`: where the service listens (default: config server.port
# and server.host, 8080 on 127.0.0.1); server.public_url, and with it the WebAuthn origin and
# the origin the terminal agent accepts, follows unless set.
PORT   ?=
HOST   ?=

.PHONY: serve test lint bench clean

serve: $(VENV)/.installed
	$(BIN)/authsvc serve $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST))

test: $(VENV)/.installed-test
	bash scripts/test-backends
	$(BIN)/ruff check .
	$(BIN)/pytest -n auto --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis
