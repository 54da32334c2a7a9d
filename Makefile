# Two commands set everything up: `make run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= 2
MAKEFLAGS += --no-print-directory
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test bench fuzz docs clean format

all: build

deps:
	@SWACTOR_NODE_DIR=$(BUILD_DIR)/node scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	$(BUILD_DIR)/apps/swactor run apps/examples/default.toml

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 300

bench: build
	@cmake --build $(BUILD_DIR) -j$(JOBS) --target benchmarks
	@scripts/run-benchmarks.sh $(BUILD_DIR)

docs: build
	@$(BUILD_DIR)/apps/swactor config-reference -o docs/config.md
	@echo "docs/config.md regenerated"

fuzz:
	@scripts/install-deps.sh fuzz
	@scripts/run-fuzz.sh

format:
	@find core ipc protocols actors apps tests -name '*.[ch]pp' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-fuzz
