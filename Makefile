# `make` builds target/release/libmigrate.so; `make test` runs every check CI runs.
CARGO ?= cargo
LIB := target/release/libmigrate.so

.PHONY: all build test lint fuzz-build demo bench soak clean

all: build

build:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# The fuzz crate lives outside the workspace; CI proves it builds.
fuzz-build:
	$(CARGO) build --release --manifest-path fuzz/Cargo.toml

test: build lint fuzz-build
	$(CARGO) test --release --workspace

demo: build
	scripts/demo.sh

# Timings live here, not in the tests.
bench: build
	scripts/bench.sh

# Not in CI: 200 dump/kill/restore cycles each of a threaded Python program
# and a file-copying C program (MIGRATE_SOAK_CYCLES=N for another count);
# prints the failures (must be 0) and the slowest cycle.
soak: build
	$(CARGO) test --release -p migrate-tests --test soak -- --ignored --nocapture --test-threads=1

clean:
	$(CARGO) clean
