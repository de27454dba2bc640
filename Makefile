# `make` builds target/release/libmigrate.so and target/release/migrate; `make test` runs every check CI runs.
CARGO ?= cargo
LIB := target/release/libmigrate.so

.PHONY: all build test lint fuzz-build fuzz demo bench soak clean install install-files

all: build

build:
	$(CARGO) build --release --workspace

# `make install PREFIX=...`: bin/migrate and lib/libmigrate.so, where the
# installed command finds its library. `install-files` copies what is
# built already (the cli tests run it, inside a cargo test).
PREFIX ?= /usr/local

install: build install-files

install-files:
	install -D -m 0755 target/release/migrate $(DESTDIR)$(PREFIX)/bin/migrate
	install -D -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libmigrate.so

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# The fuzz crate lives outside the workspace; CI proves it builds.
fuzz-build:
	$(CARGO) build --release --manifest-path fuzz/Cargo.toml

# Coverage-guided fuzzing, FUZZ_TIME seconds in all, shared by the targets.
# The instrumentation flags are stable `-C` ones, so any toolchain works
# (no cargo-fuzz, no sanitizer); `--target` keeps them off build scripts
# and proc macros. Findings go to fuzz/artifacts/<target>/ (see fuzz/README.md).
FUZZ_TIME ?= 600
FUZZ_TARGETS := decode meta
FUZZ_HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := -Cpasses=sancov-module \
	-Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
	-Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares \
	-Cdebug-assertions -Coverflow-checks

fuzz:
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release \
		--target $(FUZZ_HOST) --target-dir target/cov
	@each=$$(( $(FUZZ_TIME) / $(words $(FUZZ_TARGETS)) )); \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t fuzz/artifacts/$$t || exit 1; \
		echo "fuzz: $$t for $$each s"; \
		fuzz/target/cov/$(FUZZ_HOST)/release/$$t -max_total_time=$$each -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=fuzz/artifacts/$$t/ \
			fuzz/corpus/$$t fuzz/seeds/$$t || exit 1; \
	done

test: build lint fuzz-build
	$(CARGO) test --release --workspace --no-fail-fast

demo: build
	scripts/demo.sh

# Timings live here, not in the tests.
bench: build
	scripts/bench.py

# Not in CI: 200 dump/kill/restore cycles each of a threaded Python program
# and a file-copying C program (MIGRATE_SOAK_CYCLES=N for another count);
# prints the failures (must be 0) and the slowest cycle.
soak: build
	$(CARGO) test --release -p migrate-tests --test soak -- --ignored --nocapture --test-threads=1

clean:
	$(CARGO) clean
