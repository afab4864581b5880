# The two commands of README.md: `make dev` (run locally) and `make test` (the test suite).
# Both bootstrap everything they need: the virtual environment, the project, and for the
# tests the control plane (kube-apiserver, etcd, kubectl, helm) built from the Go proxy.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test check lint envtest crds bench soak fuzz clean docs docs-serve docs-reference dist
BENCH_STAMP := $(VENV)/.bench-installed

# The one-node test cluster: cluster-up, cluster-test, cluster-down (see README).
include hack/cluster/cluster.mk

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/kube-taskqueue dev

envtest:
	@hack/envtest/build.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) lint
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh | tail -n 1)" $(BIN)/pytest $(PYTEST_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

# Benchmarks against Celery, Dramatiq and a hand-written loop on ElasticMQ (Maven + java);
# writes bench/RESULTS.md and bench/throughput.png.
bench:
	@# A head start for the control plane build (a fresh machine compiles kube-apiserver)
	@# while pip installs; bench.run waits for it before the operator benchmarks.
	@nice -n 19 hack/envtest/build.sh etcd kube-apiserver kubectl > /dev/null 2>&1 &
	$(MAKE) $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The reliability scenarios at full size (100,000 messages, 20 kills); writes bench/SOAK.md.
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The admission invariant (what validation accepts, the API server and SQS accept) on many
# more generated TaskQueues than `make test` runs: FUZZ_EXAMPLES=20000 make fuzz.
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh | tail -n 1)" TASKQUEUE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/pytest -p no:cacheprovider --timeout=0 --hypothesis-show-statistics \
		tests/resource/test_admission_invariant.py -k what_validation

crds: $(STAMP)
	$(BIN)/kube-taskqueue crd --write

# The documentation site (docs/, mkdocs.yml): the generated references first, then a strict
# build (a broken link, a missing page or an undocumented public name fails it) into site/.
docs: $(STAMP)
	$(BIN)/python hack/docs/reference.py --write
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The site served with live reload, on loopback only.
docs-serve: $(STAMP)
	$(BIN)/python hack/docs/reference.py --write
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# Regenerate docs/reference/ from the code (CLI parser, CRD schemas, chart values).
docs-reference: $(STAMP)
	$(BIN)/python hack/docs/reference.py --write

# Release artifacts into dist/: wheel and sdist (twine check), the chart package (helm lint
# --strict), the CRDs as one file for kubectl apply; offline, from a clean clone.
dist: $(STAMP)
	hack/dist/build.sh

clean:
	rm -rf site $(VENV) .pytest_cache .mypy_cache .ruff_cache
