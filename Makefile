# sched_hint: each target is the subcommand of the same name of scripts/sched-hint, the one
# entry point (`scripts/sched-hint help` lists them); see README.md.
SH := scripts/sched-hint

.PHONY: help setup demo test test-host check-series check-series-build kernel kernel-baseline \
	kernel-debug module selftests vm-test vm-test-debug vm-test-kcsan bench series tuner \
	install clean

help:
	@$(SH) help
	@echo
	@echo "make TARGET runs the command of that name; also: kernel-baseline, kernel-debug,"
	@echo "vm-test-debug, vm-test-kcsan (a command with its flag), tuner, clean"

setup demo test test-host check-series check-series-build kernel module selftests vm-test \
	bench series:
	$(SH) $@

kernel-baseline:
	$(SH) kernel --baseline

kernel-debug:
	$(SH) kernel --debug

vm-test-debug:
	$(SH) vm-test --debug

vm-test-kcsan:
	$(SH) vm-test --kcsan

module: kernel

tuner:
	cargo build --release -p tuner

PREFIX ?= /usr/local
install: tuner
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" $(SH) install

clean:
	cargo clean
	rm -rf results
