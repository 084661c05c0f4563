# Kippu: two commands.
#   make dev    runs the whole platform on the embedded default
#   make test   runs every check and test
SHELL := /bin/bash
CONTRACTS := contracts
ANVIL := $(CONTRACTS)/node_modules/.bin/anvil

# The production-parts variant of the end-to-end test runs against these;
# set them empty (make test KIPPU_TEST_POSTGRES= KIPPU_TEST_MOSQUITTO=) on a machine without them.
KIPPU_TEST_POSTGRES ?= postgres://127.0.0.1:5432/test
KIPPU_TEST_MOSQUITTO ?= mqtt://127.0.0.1:1883
export KIPPU_TEST_POSTGRES KIPPU_TEST_MOSQUITTO

.PHONY: dev test fast deny node browser fmt-check clippy contracts-test abi check-abi interop-selftest rust-test web-js-test fmt prod-build

# npm ci only when the lockfile changed since the last install.
$(CONTRACTS)/node_modules/.installed: $(CONTRACTS)/package-lock.json
	cd $(CONTRACTS) && npm ci --no-audit --no-fund
	touch $@

# The independent VC implementation (Digital Bazaar) the interop tests run against.
tests/interop/node_modules/.installed: tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund
	touch $@

# Deque's axe-core, which the browser tests inject into each traveler page (accessibility check).
tests/a11y/node_modules/.installed: tests/a11y/package-lock.json
	cd tests/a11y && npm ci --no-audit --no-fund
	touch $@

# Hardhat's node (EDR), the second EVM implementation the trip and the outbox's fault tests run on.
tests/hardhat/node_modules/.installed: tests/hardhat/package-lock.json
	cd tests/hardhat && npm ci --no-audit --no-fund
	touch $@

node: $(CONTRACTS)/node_modules/.installed tests/interop/node_modules/.installed tests/a11y/node_modules/.installed tests/hardhat/node_modules/.installed

# Debian's Chromium and ChromeDriver for the browser tests (does nothing when they are there).
browser:
	scripts/install-browser.sh

# The demo exists only in a build with the `dev` feature.
dev: node
	cargo run -p kippu --features dev -- dev

test: deny fmt-check clippy contracts-test check-abi interop-selftest web-js-test prod-build rust-test
	@echo "make test: all checks passed"

# The fast loop: the use cases and every web route over in-memory ports (no chain, broker or
# database server), the module-cycle check. `make test` runs them too.
fast:
	cargo test -p kippu-app -p kippu-web -p kippu-testkit --locked
	cargo test -p kippu-e2e --test architecture --locked

# Dependency policy (deny.toml): allowed licenses, no wildcard versions, crates.io only;
# duplicate versions are warnings (`cargo deny check bans` without the flag shows who pulls
# each). cargo-deny is built from crates.io (`cargo install --locked cargo-deny`) when missing.
deny:
	@cargo deny --version >/dev/null 2>&1 || env -u CARGO_TARGET_DIR cargo install --locked cargo-deny
	cargo deny --locked check --hide-inclusion-graph licenses bans sources

fmt-check:
	cargo fmt --all --check

fmt: node
	cargo fmt --all
	$(MAKE) -C $(CONTRACTS) fmt

# The workspace builds the demo in (its tests enable `dev`); the default build is linted too.
clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo clippy -p kippu -p kippu-web -p kippu-payments --lib --bins --locked -- -D warnings

contracts-test: node
	$(MAKE) -C $(CONTRACTS) fmt-check test-ci snapshot-check

# Rust bindings come from contracts/abi; this fails when they are stale against the Solidity sources.
check-abi: node
	$(MAKE) -C $(CONTRACTS) check-abi

abi: node
	$(MAKE) -C $(CONTRACTS) abi

# The Digital Bazaar harness checks itself (and the W3C vectors) before Kippu's tests lean on it.
interop-selftest: node
	node tests/interop/selftest.mjs

# The phone's pass code (web/static/device.js) against the KP2 wire format, in Node's WebCrypto.
web-js-test:
	node web/static/test/kp2.test.mjs

# A default build of the platform holds no demo: no simulator crate, no fake Stripe, no `dev`
# command (the security tests check the same from the dependency graph). The web layer reaches
# the store and the chain only through kippu-app's ports.
prod-build:
	cargo build -p kippu --locked
	@! cargo tree -p kippu-web -e normal --locked | grep -qE "kippu-(store|chain) " || { echo "prod-build: kippu-web depends on an adapter"; exit 1; }
	@! cargo tree -p kippu -e normal --locked | grep -q gate-firmware-sim || { echo "prod-build: gate-firmware-sim is linked"; exit 1; }
	@! "$${CARGO_TARGET_DIR:-target}/debug/kippu" --help | grep -qw dev || { echo "prod-build: kippu --help offers dev"; exit 1; }
	@! grep -qa "kippu-fake-stripe" "$${CARGO_TARGET_DIR:-target}/debug/kippu" || { echo "prod-build: the fake Stripe is in the binary"; exit 1; }
	@echo "prod-build: no demo in the default build"

rust-test: node browser
	cargo test --workspace --locked
