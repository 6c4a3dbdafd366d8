# sched_hint: every target calls a script or cargo; see README.md.
.PHONY: help setup kernel kernel-baseline kernel-debug module selftests vm-test vm-test-debug \
	vm-test-kcsan test test-host check-series check-patches check-series-build series tuner \
	install demo bench clean

help:
	@echo "make setup           install everything (Debian packages, crates.io, PyPI)"
	@echo "make demo            boot the VM, run a mixed workload and the tuner with the local LLM"
	@echo "make test            host tests, series checks, then the kernel + VM lane (CI runs this)"
	@echo "make kernel          build the patched kernel (cache: ~/.cache/sched_hint)"
	@echo "make kernel-baseline build the same base and config without the series"
	@echo "make module          build kernel-rust/sched_hint against the patched kernel"
	@echo "make vm-test         boot the patched kernel with 2 NUMA nodes and run the guest tests"
	@echo "make vm-test-debug   the same on the KASAN/lockdep/Smack kernel, with 300,000 fuzzed ioctls"
	@echo "make vm-test-kcsan   the ioctl, adversarial and fuzz tests on a KCSAN kernel (not in make test)"
	@echo "make bench           patched vs baseline benchmarks, results/bench/"
	@echo "make series          export the kernel work tree's 'dev' branch to patches/"
	@echo "make install         the tuner alone: binary, unit, udev rule, config, docs (PREFIX, DESTDIR)"

setup:
	scripts/setup.sh

kernel:
	scripts/kernel.sh

kernel-baseline:
	scripts/kernel.sh --baseline

kernel-debug:
	scripts/kernel.sh --debug

module: kernel
	scripts/module.sh

selftests:
	scripts/selftests.sh

vm-test:
	scripts/vm-test.sh

vm-test-debug:
	scripts/vm-test.sh --debug

vm-test-kcsan:
	scripts/vm-test.sh --kcsan

tuner:
	cargo build --release -p tuner

PREFIX ?= /usr/local
install: tuner
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh

test-host:
	scripts/test-host.sh

check-series:
	scripts/kernel.sh --tree-only >/dev/null
	scripts/check-series-sync.sh
	scripts/check-patches.sh

check-series-build:
	scripts/check-series-build.sh

test: test-host check-series vm-test

series:
	scripts/series-export.sh

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

clean:
	cargo clean
	rm -rf results
