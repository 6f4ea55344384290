# sluice — the two commands a new user runs are `make demo` and `make test`.
# Every target installs what it needs first (scripts/install-deps is quick when all is there).

JOBS        ?= 2
BUILD       ?= build
RELEASE_DIR := $(BUILD)/release
ASAN_DIR    := $(BUILD)/asan
FUZZ_DIR    := $(BUILD)/fuzz
FUZZ_SECONDS ?= 30
SLUICE      := $(RELEASE_DIR)/sluice

.PHONY: all deps release asan demo test test-integration test-release fuzz bench format format-check docs clean services-start services-stop

all: release

deps:
	@scripts/install-deps

$(RELEASE_DIR)/build.ninja: | deps
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BENCH=ON

$(ASAN_DIR)/build.ninja: | deps
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON -DSLUICE_BENCH=OFF

release: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS)

asan: deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L unit

# The quickstart: seed an embedded SQLite database with 1 M audit rows on first run, then
# archive the rows older than 90 days into ./out/ as gzip JSONL and delete them.
demo: release
	@mkdir -p demo
	@if [ ! -f demo/audit.db ]; then \
	  echo "== seeding demo/audit.db with 1,000,000 audit rows (first run only)"; \
	  $(SLUICE) run examples/quickstart-seed.yaml; \
	fi
	@echo "== archiving rows older than 90 days into ./out/"
	$(SLUICE) run examples/quickstart.yaml

# Everything CI checks: unit and pipeline tests under ASan+UBSan, integration tests against
# throwaway PostgreSQL, S3 and Redis servers (ASan+UBSan too), release-build tests that measure
# memory, and every fuzzer for $(FUZZ_SECONDS) s.
test: asan test-integration test-release fuzz
	@echo "make test: all passed"

# Start the servers, run the tests labelled `integration`, always stop the servers.
test-integration: asan
	@scripts/services start
	@set -e; trap '$(CURDIR)/scripts/services stop' EXIT; eval "$$(scripts/services env)"; \
	  cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) -L integration --no-tests=ignore

services-start: deps
	scripts/services start
	@echo 'eval "$$(scripts/services env)"  # to use them from this shell'

services-stop:
	scripts/services stop

# Only what the release-labelled tests run (the binaries), not every unit test again.
test-release: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target sluice sluice-testing sluice-agent
	cd $(RELEASE_DIR) && ctest --output-on-failure -L release

fuzz: deps
	CXX=clang++ CC=clang cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DSLUICE_FUZZ=ON -DSLUICE_BENCH=OFF >/dev/null
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzzers
	scripts/run-fuzzers $(FUZZ_DIR) $(FUZZ_SECONDS)

bench: release
	bench/run-all

format:
	find src bench fuzz tests -name '*.cc' -o -name '*.h' | xargs clang-format -i

format-check:
	find src bench fuzz tests -name '*.cc' -o -name '*.h' | xargs clang-format --dry-run --Werror

docs: release
	$(SLUICE) nodes --markdown > docs/nodes.md

clean:
	rm -rf $(BUILD)
