# Makefile - short names for the CMake build.
#
#   make run        build, then run the detection workflow with tracing on
#   make test       build and run every test: plain, ASan+UBSan, TSan
#   make build      configure and build into build/
#   make deps       install missing build and test dependencies
#   make asan       sanitizer build in build-asan/ and its tests
#   make tsan       sanitizer build in build-tsan/ and its tests
#   make bench      build and run every program in bench/ (the C ones;
#                   not bench-report, bench-capture, bench-diff, bench-sql)
#   make bench-report  the speed and memory of `stageprof report` on a
#                   generated 1 GiB trace beside Python json and jq:
#                   minutes, about 7 GB of memory, 1.1 GB kept in /tmp
#   make bench-capture  requests/s of the example server under wrk with and
#                   without `stageprof capture` pulling windows back to
#                   back: 6 pairs of 10 s runs, about 2.5 minutes
#   make bench-diff  `stageprof diff` against `report` on two generated
#                   256 MiB traces: about a minute once they exist
#   make bench-sql  `stageprof sql` loading a generated trace against
#                   sqlite3's .import of the same rows from CSV
#   make fuzz       fuzz the trace reader for FUZZ_SECONDS (default 600) in
#                   build-fuzz/, built with clang, ASan and UBSan
#   make install    install into $(PREFIX) (default /usr/local)
#   make format     clang-format the C sources in place
#   make clean      remove the build directories
#
# Variables: WERROR=ON turns warnings into errors (CI), JOBS=N parallelism,
# PREFIX for install, BUILD_TYPE for the main build, FUZZ_SECONDS for
# make fuzz, BENCH_REPORT_ARGS for make bench-report (e.g.
# "--size-mb 64 --skip-baselines" for a run of seconds), BENCH_CAPTURE_ARGS
# for make bench-capture (e.g. "--pairs 3 --seconds 8").

# The build tool CMake drives is make too: keep its output to the point.
MAKEFLAGS += --no-print-directory

CMAKE ?= cmake
CTEST ?= ctest
JOBS ?= 2
WERROR ?= OFF
PREFIX ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo

BUILD := build
BUILD_ASAN := build-asan
BUILD_TSAN := build-tsan

CTEST_FLAGS := --output-on-failure -j$(JOBS)

# Sanitizer builds leave out benchmarks and examples; the demo is still
# built because the integration tests drive it.
SANITIZE_CONFIG := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	-DSTAGEPROF_WERROR=$(WERROR) \
	-DSTAGEPROF_BUILD_BENCH=OFF -DSTAGEPROF_BUILD_EXAMPLES=OFF \
	-DSTAGEPROF_BUILD_TESTS=ON

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# ThreadSanitizer cannot map its shadow memory on kernels with high ASLR
# entropy ("unexpected memory mapping"); running without randomisation
# avoids that and changes nothing else for the tests.
ARCH := $(shell uname -m)
TSAN_WRAP := $(shell setarch $(ARCH) -R true >/dev/null 2>&1 && echo setarch $(ARCH) -R)

C_SOURCES = $(shell git ls-files -co --exclude-standard -- \
	'include/*.h' 'src/*.[ch]' 'cli/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' \
	'examples/*.[ch]' 2>/dev/null)

.PHONY: all deps configure build run test test-build asan tsan bench \
	bench-report bench-capture bench-diff bench-sql fuzz install format format-check clean

all: build

deps:
	@sh scripts/deps.sh

configure: deps
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
		-DSTAGEPROF_WERROR=$(WERROR)

build: configure
	$(CMAKE) --build $(BUILD) -j$(JOBS)

# The detection workflow on darknet, traced; then the report of its trace,
# also as a page beside it.
DETECT := $(BUILD)/examples/detect_workflow/detect_workflow
DETECT_OUT := $(BUILD)/detect_output

run: build
	@if [ ! -x $(DETECT) ]; then \
		echo "make run: $(DETECT) was not built (configure says why)" >&2; \
		exit 1; \
	fi
	@echo "+ STAGEPROF_ENABLE=1 $(DETECT) --out $(DETECT_OUT)"
	@STAGEPROF_ENABLE=1 $(DETECT) --out $(DETECT_OUT)
	@trace=$$(ls -t inference_profiling/workflow_execution_*.json* | head -n 1); \
	page=$${trace%%.json*}.html; \
	echo; echo "+ $(BUILD)/stageprof report --html=$$page $$trace"; \
	$(BUILD)/stageprof report --html="$$page" "$$trace" && \
	echo && echo "make run: the report as a page: $$page (open it in a browser)"

# Every stage runs even when an earlier one failed, so one CI log shows all
# failures; the target fails if any stage did.
test: build
	@status=0; \
	echo "== tests: $(BUILD)"; \
	$(CTEST) --test-dir $(BUILD) $(CTEST_FLAGS) || status=1; \
	$(MAKE) --no-print-directory asan || status=1; \
	$(MAKE) --no-print-directory tsan || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)" >&2; fi; \
	exit $$status

asan: deps
	$(CMAKE) -S . -B $(BUILD_ASAN) -DSTAGEPROF_SANITIZE=address $(SANITIZE_CONFIG)
	$(CMAKE) --build $(BUILD_ASAN) -j$(JOBS)
	@echo "== tests: $(BUILD_ASAN) (AddressSanitizer + UndefinedBehaviorSanitizer)"
	$(ASAN_ENV) $(CTEST) --test-dir $(BUILD_ASAN) $(CTEST_FLAGS)

tsan: deps
	$(CMAKE) -S . -B $(BUILD_TSAN) -DSTAGEPROF_SANITIZE=thread $(SANITIZE_CONFIG)
	$(CMAKE) --build $(BUILD_TSAN) -j$(JOBS)
	@echo "== tests: $(BUILD_TSAN) (ThreadSanitizer)"
	$(TSAN_ENV) $(TSAN_WRAP) $(CTEST) --test-dir $(BUILD_TSAN) $(CTEST_FLAGS)

bench: deps
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
		-DSTAGEPROF_WERROR=$(WERROR) -DSTAGEPROF_BUILD_BENCH=ON
	$(CMAKE) --build $(BUILD) -j$(JOBS)
	@found=0; status=0; \
	for b in $(BUILD)/bench/*; do \
		[ -f "$$b" ] && [ -x "$$b" ] || continue; \
		found=1; \
		echo "== $$b"; \
		"$$b" || status=1; \
	done; \
	if [ $$found -eq 0 ]; then echo "make bench: no programs in bench/ yet"; fi; \
	exit $$status

# On demand only (it takes minutes and GiB of memory): bench/*.py is not
# built into build/bench/, so `make bench` does not run it.
PYTHON ?= python3
BENCH_REPORT_ARGS ?=

bench-report: build
	$(PYTHON) bench/bench_report.py --stageprof $(BUILD)/stageprof \
		$(BENCH_REPORT_ARGS)

# On demand too: minutes of wrk against examples/detect_server, which needs
# darknet, libjpeg, libmicrohttpd and wrk (make deps).
BENCH_CAPTURE_ARGS ?=

bench-capture: build
	$(PYTHON) bench/bench_capture.py --build $(BUILD) $(BENCH_CAPTURE_ARGS)

# On demand: `stageprof diff` against two `report`s on two large generated
# traces (BENCH_DIFF_ARGS, e.g. "--size-mb 64 --reps 3").
BENCH_DIFF_ARGS ?=

bench-diff: build
	$(PYTHON) bench/bench_diff.py --stageprof $(BUILD)/stageprof \
		$(BENCH_DIFF_ARGS)

# On demand: `stageprof sql` loading a large generated trace against the
# sqlite3 shell's .import of the same rows (BENCH_SQL_ARGS).
BENCH_SQL_ARGS ?=

bench-sql: build
	$(PYTHON) bench/bench_sql.py --stageprof $(BUILD)/stageprof \
		$(BENCH_SQL_ARGS)

# The fuzzer of `stageprof report`'s trace reader (tests/fuzz/): its own
# tree, configured with clang and ASan+UBSan; the corpus it grows is kept
# in build-fuzz/fuzz-corpus between runs, findings go to
# build-fuzz/fuzz-artifacts.
FUZZ_SECONDS ?= 600
FUZZ_CC ?= clang
BUILD_FUZZ := build-fuzz

fuzz: deps
	@sh tests/fuzz/run_fuzz.sh --build=$(BUILD_FUZZ) \
		--seconds=$(FUZZ_SECONDS) --jobs=$(JOBS) --cmake=$(CMAKE) \
		--clang="$$(command -v $(FUZZ_CC) || true)"

install: build
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $(C_SOURCES)

format-check:
	clang-format --dry-run --Werror $(C_SOURCES)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)
