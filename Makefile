# Thin wrapper over CMake. The README's two commands: `make run` and `make test`.
JOBS      ?= $(shell nproc)
BUILD     ?= build
ASAN      ?= build-asan
FUZZDIR   ?= build-fuzz
FUZZ_SECONDS ?= 5

.PHONY: all deps build run test test-unit test-fuzz fuzz bench checksrc clean
MAKEFLAGS += --no-print-directory

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCP2P_INTEROP=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# The main job. For now it creates an identity and prints it.
run: build
	@scripts/run.sh $(BUILD)

test: deps
	@JOBS=$(JOBS) BUILD=$(BUILD) ASAN=$(ASAN) FUZZDIR=$(FUZZDIR) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	    scripts/test.sh

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-fuzz: deps
	@[ -f $(FUZZDIR)/CMakeCache.txt ] || CC=clang cmake -S . -B $(FUZZDIR) -DCP2P_FUZZ=ON >/dev/null
	@cmake --build $(FUZZDIR) -j $(JOBS) -- --no-print-directory
	@scripts/fuzz.sh $(FUZZDIR) $(FUZZ_SECONDS)

# Longer fuzzing by hand: make fuzz FUZZ_SECONDS=60
fuzz: test-fuzz

bench: build
	@bench/run.sh $(BUILD)

checksrc:
	@scripts/checksrc

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZDIR)
