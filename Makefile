# Thin wrapper over CMake. The README's two commands: `make run` and `make test`.
JOBS      ?= $(shell nproc)
BUILD     ?= build
ASAN      ?= build-asan
FUZZDIR   ?= build-fuzz
FUZZ_SECONDS ?= 5

.PHONY: all deps build run test test-unit test-asan test-fuzz fuzz bench checksrc clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCP2P_INTEROP=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job. For now it creates an identity and prints it.
run: build
	@scripts/run.sh $(BUILD)

test: deps checksrc test-unit test-asan test-fuzz
	@echo "make test: all suites passed"

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN) -DCP2P_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS) -L 'unit|fuzzreplay'

$(FUZZDIR)/.configured: CMakeLists.txt
	@CC=clang cmake -S . -B $(FUZZDIR) -DCP2P_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@touch $@

test-fuzz: deps $(FUZZDIR)/.configured
	@cmake --build $(FUZZDIR) -j $(JOBS)
	@scripts/fuzz.sh $(FUZZDIR) $(FUZZ_SECONDS)

# Longer fuzzing by hand: make fuzz FUZZ_SECONDS=60
fuzz: test-fuzz

bench: build
	@echo "no benchmarks yet: they arrive with the transport (see docs/BENCHMARKS.md)"

checksrc:
	@scripts/checksrc

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZDIR)
