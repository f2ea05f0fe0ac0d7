# modelreg: every target installs what it needs, so a fresh clone works with `make run` or `make test`.
# `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
GRPCURL_VERSION := v1.9.3
# v5.8.3 needs Go >= 1.27 (shared toolchain notes); v5.8.2 builds with the machine's Go 1.26.
KUSTOMIZE_VERSION := v5.8.2
# Go code generators (buf.gen.yaml): the versions clients/go/gen was generated with.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/uv/bin/uv
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GENERATED := api/python/modelregistry
GO_GENERATED := clients/go/gen
# Where the Go code generators are installed; buf finds them on PATH.
GO_PLUGINS := $(TOOLS)/bin
GO_PLUGINS_STAMP := $(GO_PLUGINS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION)-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
TS_CLIENT := clients/ts
TS_GENERATED := $(TS_CLIENT)/src/gen

# Never let uv fetch a Python of its own or a Go toolchain switch itself: use the machine's.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export GOTOOLCHAIN := local
export GOFLAGS := -mod=readonly

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock $(wildcard */*/pyproject.toml deploy/local/pyproject.toml)
	$(UV) sync --frozen --all-groups
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## Create or update .venv from the lock file

$(TOOLS)/bin/modelreg-ferretdb: $(wildcard deploy/local/ferretdb/*.go) deploy/local/ferretdb/go.mod deploy/local/ferretdb/go.sum
	GO=$(GO) bash deploy/local/build-ferretdb.sh

$(TOOLS)/bin/grpcurl:
	@echo "building grpcurl (first time only, about a minute)..." >&2
	GOBIN=$(TOOLS)/bin $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(TOOLS)/bin/kustomize:
	@echo "building kustomize $(KUSTOMIZE_VERSION) (first time only, about a minute)..." >&2
	GOBIN=$(TOOLS)/bin $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: kustomize
kustomize: $(TOOLS)/bin/kustomize ## Build kustomize (tests/deploy render deploy/k8s with it)

# The stamp names both versions: changing a pin here reinstalls them.
$(GO_PLUGINS_STAMP):
	GOBIN=$(GO_PLUGINS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(GO_PLUGINS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@

.PHONY: go-plugins
go-plugins: $(GO_PLUGINS_STAMP) ## Install the pinned Go code generators (protoc-gen-go, protoc-gen-go-grpc)

# The Go client's modules (go.sum pins them), fetched once so its tests need no download.
.PHONY: go-client
go-client: ## Download the Go client's dependencies (clients/go)
	cd clients/go && $(GO) mod download

.PHONY: ferretdb
ferretdb: $(TOOLS)/bin/modelreg-ferretdb ## Build the FerretDB wrapper (what `make run` needs besides .venv)

.PHONY: grpcurl
grpcurl: $(TOOLS)/bin/grpcurl ## Build grpcurl (for the raw gRPC examples and the tests, not for `make run`)

# The browser tests drive Debian's chromium through Playwright (`executable_path`; CHROMIUM_PATH
# overrides). Never `playwright install`: it downloads a browser build from a CDN, which CI cannot reach.
CHROMIUM ?= $(or $(CHROMIUM_PATH),/usr/bin/chromium)

.PHONY: chromium
chromium: ## Install Debian's chromium for the browser tests when missing (apt-get, as root)
	@if [ -x "$(CHROMIUM)" ]; then \
	  echo "chromium: $(CHROMIUM) is there"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "chromium: $(CHROMIUM) missing, installing Debian's chromium (about a minute):"; \
	  echo "+ apt-get update && apt-get install -y chromium"; \
	  apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	elif [ "$${CI:-}" = true ]; then \
	  echo "chromium: $(CHROMIUM) missing and this CI user cannot apt-get install it" >&2; exit 1; \
	else \
	  echo "chromium: $(CHROMIUM) missing: the browser tests will be skipped. To run them:"; \
	  echo "  sudo apt-get install -y chromium   (or set CHROMIUM_PATH to a Chromium binary)"; \
	fi

.PHONY: tools
tools: venv ferretdb grpcurl kustomize chromium go-plugins go-client ts-deps ## Build the local servers' binaries (FerretDB wrapper, grpcurl), kustomize, the Go generators and modules, the TS client's packages; install chromium

# The TypeScript client's pinned packages (protoc-gen-es, tsc, the runtime), from its lock file;
# again only when package.json or the lock file changed.
$(TS_CLIENT)/node_modules/.package-lock.json: $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: ts-deps
ts-deps: $(TS_CLIENT)/node_modules/.package-lock.json ## Install the TypeScript client's packages (npm ci)

# Only what running needs. `exec`: make's child is the stack itself, which also stops when make is
# sent SIGINT (make keeps it to itself: deploy/local/modelreg_local/parent.py).
.PHONY: run
run: venv ferretdb ## Run the registry on the embedded local servers (data in .data/)
	exec $(PY) -m modelreg_local

.PHONY: test
test: tools ## Unit and integration tests against real FerretDB and SeaweedFS
	$(PY) -m pytest

.PHONY: test-unit
test-unit: venv ## Unit tests and the store contract on the in-memory stores (no servers)
	$(PY) -m pytest tests/unit tests/contract -m "not integration"

.PHONY: bench
bench: bench-metadata bench-artifacts bench-clients ## Run every benchmark (results in bench/results/)

.PHONY: bench-metadata
bench-metadata: tools ## Metadata service vs MLflow: create, get by alias, search (bench/results/metadata.*)
	UV=$(UV) bash bench/install-mlflow.sh
	$(PY) -m bench.metadata_bench
	$(PY) -m bench.metadata_bench --only replicas

.PHONY: lint
lint: venv lint-deploy ## ruff, mypy (strict), buf lint, buf format, buf breaking, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(MAKE) --no-print-directory proto-breaking

.PHONY: proto-breaking
proto-breaking: venv ## buf breaking: protos/ against main (on main: against the commit before; .ci/buf-breaking)
	bash .ci/buf-breaking $(BUF)

.PHONY: lint-deploy
lint-deploy: venv ## hadolint over the images' Dockerfiles (deploy/docker)
	$(VENV)/bin/hadolint deploy/docker/*.Dockerfile

.PHONY: fmt
fmt: venv ## Format Python, proto and Go sources
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(BUF) format -w
	cd clients/go && $(GO) fmt ./...

.PHONY: proto
proto: venv go-plugins ts-deps ## Regenerate the API code (Python modelreg-api, Go clients/go/gen, clients/ts) from protos/ (buf.gen.yaml)
	rm -rf $(GENERATED) $(GO_GENERATED) $(TS_GENERATED)
	PATH="$(GO_PLUGINS):$$PATH" $(BUF) generate
	touch $(GENERATED)/__init__.py $(GENERATED)/v1/__init__.py
	@# PEP 561: type checkers of installed copies read the generated .pyi stubs only with this marker.
	touch $(GENERATED)/py.typed

.PHONY: proto-check
proto-check: proto ## Fail when the committed generated code is stale
	@if [ -n "$$(git status --porcelain -- $(GENERATED) $(GO_GENERATED) $(TS_GENERATED))" ]; then \
	  git status --short -- $(GENERATED) $(GO_GENERATED) $(TS_GENERATED); \
	  echo "generated code in $(GENERATED), $(GO_GENERATED) or $(TS_GENERATED) is stale: run 'make proto' and commit the result" >&2; exit 1; fi

.PHONY: ci
ci: proto-check lint test ## What CI runs

.PHONY: bench-fuzz
bench-fuzz: tools ## Fuzz every RPC much longer than CI does (bench/results/fuzz.md)
	$(PY) -m bench.fuzz

.PHONY: bench-web
bench-web: tools ## Web UI: server-side page latency at 10,000 versions, compare page drawn in Chromium (bench/results/web.*)
	$(PY) -m bench.web_bench

.PHONY: bench-artifacts
bench-artifacts: tools ## Artifact service vs minio SDK vs MLflow on one SeaweedFS (bench/results/artifacts.*)
	UV=$(UV) bash bench/install-mlflow.sh
	$(PY) -m bench.artifacts_bench

.PHONY: bench-clients
bench-clients: tools ## Go client vs Python SDK: 1 GiB push and pull on one stack (bench/results/clients.*)
	$(PY) -m bench.clients_bench

.PHONY: clean
clean: ## Remove the virtualenv, tools and caches (keeps .data/)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
