#!/usr/bin/env bash
# Host tests: everything that needs no VM. The tuner's unit and integration tests (with the real
# local LLM server when it is installed), the shell scripts' syntax, and the bench report.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: scripts/test-host.sh   (cargo fmt --check, clippy -D warnings and cargo test for the workspace, bash -n and shellcheck for the scripts, the Python tests, the tuner's import-cycle check)"
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }

shell_scripts=("$SH_ROOT"/scripts/sched-hint "$SH_ROOT"/scripts/*.sh "$SH_ROOT"/ci/*.sh "$SH_ROOT"/.ci/run)
for s in "${shell_scripts[@]}"; do
	bash -n "$s"
done
# Settings and the codes left out are in .shellcheckrc; make setup installs shellcheck.
(cd "$SH_ROOT" && shellcheck -x "${shell_scripts[@]}")
sh_log "scripts: syntax and shellcheck ok"
"$SH_VENV/bin/python" "$SH_ROOT/scripts/bench_report_test.py" 2>&1
"$SH_VENV/bin/python" "$SH_ROOT/ci/lat_stats_test.py" 2>&1
"$SH_VENV/bin/python" "$SH_ROOT/ci/llm_load_test.py" 2>&1
"$SH_VENV/bin/python" "$SH_ROOT/scripts/tuner_layers_test.py" 2>&1
sh_log "bench report, rt-app/cyclictest parsing, the serving client and the layer check: tests ok"
# The tuner's modules use each other one way: prints the layers, fails on an import cycle.
"$SH_VENV/bin/python" "$SH_ROOT/scripts/tuner_layers.py"
cd "$SH_ROOT"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings 2>&1
sh_log "rust: fmt and clippy clean"
# make setup installed the model and server: their tests must run, not skip.
SCHED_HINT_REQUIRE_LLM=1 cargo test --workspace --release 2>&1
