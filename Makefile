# hapax: `make run` and `make test` are the two commands the README leads with.
# Meson + ninja do the building; this file only strings the steps together.

BUILD   ?= build
ASAN    ?= build-asan
CONFIG  ?= config/hapax.yaml
PYTHON  ?= /usr/bin/python3
# libFuzzer build (clang, ASan+UBSan), only for `make fuzz` / `make test`.
FUZZ    ?= build-fuzz
FUZZ_SECONDS ?= 60
# make test: a fixed number of inputs from a fixed seed (repeatable).
FUZZ_TEST_RUNS ?= 20000
FUZZ_TARGETS = json stream inbound config request http h2 h3 upstream peer
# Integration tests run in this many worker processes (run.py -j): a test
# mostly waits on its children, so two workers use a core between them.
IT_JOBS ?= 2
# make test: how many phases run at once, and where their logs go.
TEST_JOBS ?= 3
TEST_LOGS ?= $(BUILD)/test-logs

SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps test-deps build asan run test unit integration check-build-deps check-banned analyze fuzz fuzz-build fuzz-test clean \
        test-phases t-build t-asan t-fuzz-build t-analyze t-checks t-unit-release t-unit-asan t-it-asan t-it-release t-fuzz

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test
	@$(MAKE) -s tests/sdk/node_modules/.package-lock.json

# The client libraries, exactly as pinned by the committed lockfile. They need
# Node.js >= 18.17 (the AI SDK's undici does), so Debian bookworm's own nodejs
# 18.19 works; older Node gets this message rather than a failure deep in npm.
# (Only @vercel/oidc, pulled in by `ai`, declares Node >= 20: npm warns
# EBADENGINE; the tests never call it, and it loads on 18.19.)
tests/sdk/node_modules/.package-lock.json: tests/sdk/package-lock.json
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a == 18 && b >= 17) ? 0 : 1)' || \
		{ echo "error: tests/sdk needs Node.js >= 18.17, found $$(node --version 2>&1)" \
		       "(Debian bookworm's nodejs package, 18.19, is enough)" >&2; exit 1; }
	cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Doptimization=2

$(ASAN)/build.ninja:
	meson setup $(ASAN) --buildtype=debug -Doptimization=1 -Dtests=enabled \
		-Db_sanitize=address,undefined -Dc_args=-fno-sanitize-recover=all

# Everything in it is instrumented for coverage (fuzzer-no-link); only the
# targets link libFuzzer itself.
$(FUZZ)/build.ninja:
	CC=clang meson setup $(FUZZ) --buildtype=debug -Doptimization=1 -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		"-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all"

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: test-deps $(ASAN)/build.ninja
	ninja -C $(ASAN)

# make run CONFIG=path ARGS="--port 9090": another file, extra flags
# (HAPAX_HOST / HAPAX_PORT in the environment work too).
run: build
	./$(BUILD)/hapax --config $(CONFIG) $(ARGS)

# The release build may have been configured on a machine without cmocka:
# here the unit tests are required (an error when cmocka is missing).
unit: test-deps build asan check-build-deps check-banned
	meson configure $(BUILD) -Dtests=enabled
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs
	$(SAN_ENV) meson test -C $(ASAN) --print-errorlogs

integration: test-deps build asan
	$(PYTHON) tests/integration/run.py -j $(IT_JOBS) --slowest 20 --bin $(ASAN)/hapax
	$(PYTHON) tests/integration/run.py -j $(IT_JOBS) --slowest 20 --bin $(BUILD)/hapax

# A build with only the build packages (no cmocka) must configure and build.
check-build-deps:
	scripts/check-build-deps.sh

# No atoi/sprintf/strcpy/... in src/, no raw malloc/free outside
# src/util/alloc.c; first proves the check finds planted lines.
check-banned:
	scripts/check-banned-test.sh
	scripts/check-banned.sh

# clang's static analyzer (clang --analyze, each src/ file with its flags
# from compile_commands.json) and cppcheck, beside each other: any finding
# fails. First proves the analyzers find planted bugs.
analyze: test-deps $(BUILD)/build.ninja
	scripts/check-analyze-test.sh
	scripts/analyze.sh $(BUILD)

fuzz-build: test-deps $(FUZZ)/build.ninja
	ninja -C $(FUZZ) $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%)

# Each target over its committed corpus, then FUZZ_SECONDS of fuzzing.
fuzz: fuzz-build
	$(SAN_ENV) tests/fuzz/run.sh $(FUZZ) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The short run `make test` does: keeps the targets building and clean.
fuzz-test: fuzz-build
	$(SAN_ENV) tests/fuzz/run.sh $(FUZZ) runs=$(FUZZ_TEST_RUNS) $(FUZZ_TARGETS)

# make test = analyze + unit + integration + fuzz-test, the same steps as
# those targets, run as phases up to TEST_JOBS at once (the integration
# passes mostly wait, the rest is CPU-bound), each with its output in
# TEST_LOGS/PHASE.log and a start line, then an ok line or FAILED with the
# log's tail, on the terminal. Any failed phase fails `make test`; the
# others still run (RUN: a failed test phase does not stop the lane behind
# it; a failed build does stop what needs it).
PHASE = @scripts/test-phase.sh $(TEST_LOGS)
RUN = @PHASE_EXIT0=1 scripts/test-phase.sh $(TEST_LOGS)

test: deps test-deps $(BUILD)/build.ninja $(ASAN)/build.ninja $(FUZZ)/build.ninja
	@rm -rf $(TEST_LOGS)
	@start=$$(date +%s); $(MAKE) --no-print-directory -k -j$(TEST_JOBS) test-phases; rc=$$?; \
	  [ ! -s $(TEST_LOGS)/failed ] || rc=1; \
	  secs=$$(($$(date +%s) - start)); \
	  if [ $$rc -eq 0 ]; then echo "make test: all phases passed in $$((secs / 60))m$$((secs % 60))s"; \
	  else echo "make test: FAILED after $$((secs / 60))m$$((secs % 60))s (phase logs: $(TEST_LOGS)/)"; fi; \
	  exit $$rc

# Three lanes, fixed by order-only prerequisites (make alone would start
# whatever it scans first): the ASan build, its integration pass (the
# longest chain), its unit tests; the release build (once the ASan one is
# done), its integration pass, the fuzz build and run, its unit tests; and
# the analysis, then the checks. The CPU-bound phases run at a lower
# priority (LOW) so that the integration passes get the CPU when they need it.
LOW = nice -n 10
test-phases: t-unit-asan t-unit-release t-checks

t-build: | t-asan
	$(PHASE) build '' sh -c 'meson configure $(BUILD) -Dtests=enabled && ninja -C $(BUILD)'
t-asan:
	$(PHASE) build-asan '' ninja -C $(ASAN)
t-fuzz-build: | t-it-release
	$(PHASE) build-fuzz '' $(LOW) ninja -C $(FUZZ) $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%)
t-analyze:
	$(RUN) analyze 'check-analyze-test:|analyze:' \
		$(LOW) sh -c 'scripts/check-analyze-test.sh && scripts/analyze.sh $(BUILD)'
t-checks: | t-analyze
	$(RUN) checks 'check-' $(LOW) sh -c 'scripts/check-build-deps.sh && \
		scripts/check-banned-test.sh && scripts/check-banned.sh'
t-unit-release: t-build | t-fuzz
	$(RUN) unit-release '^(Ok|Fail|Timeout): ' $(LOW) meson test -C $(BUILD) --print-errorlogs
t-unit-asan: t-asan | t-it-asan
	$(RUN) unit-asan '^(Ok|Fail|Timeout): ' $(LOW) env $(SAN_ENV) meson test -C $(ASAN) --print-errorlogs
t-it-asan: t-asan
	$(RUN) integration-asan '^hapax integration:' \
		$(PYTHON) tests/integration/run.py -j $(IT_JOBS) --slowest 20 --bin $(ASAN)/hapax
t-it-release: t-build
	$(RUN) integration-release '^hapax integration:' \
		$(PYTHON) tests/integration/run.py -j $(IT_JOBS) --slowest 20 --bin $(BUILD)/hapax
t-fuzz: t-fuzz-build
	$(RUN) fuzz '^fuzz' $(LOW) env $(SAN_ENV) tests/fuzz/run.sh $(FUZZ) runs=$(FUZZ_TEST_RUNS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
