# The two commands of README.md: `make dev` (run locally) and `make test` (the test suite).
# Both bootstrap everything they need: the virtual environment, the project, and for the
# tests the control plane (kube-apiserver, etcd, kubectl, helm) built from the Go proxy.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test check lint envtest crds clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/taskqueue dev

envtest:
	@hack/envtest/build.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh | tail -n 1)" $(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
