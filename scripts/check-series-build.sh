#!/usr/bin/env bash
# Build the patched kernel once per patch of the series, so that each patch builds on its own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/check-series-build.sh
  For N = 1..len(series): checks out base + the first N patches in a scratch work tree and runs
  an incremental build into \$SCHED_HINT_CACHE/build/per-patch. Slow: a patch that touches
  include/linux/sched.h rebuilds most of the kernel.
USAGE
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
"$SH_ROOT/scripts/kernel.sh" --tree-only >/dev/null
tree=$SH_CACHE/linux
scratch=$SH_CACHE/per-patch-tree
build=$SH_CACHE/build/per-patch
mapfile -t kargs < <(sh_kmake_args)
commits=$(git -C "$tree" rev-list --reverse base..series)
git -C "$tree" worktree remove --force "$scratch" 2>/dev/null || rm -rf "$scratch"
git -C "$tree" worktree prune
git -C "$tree" worktree add -q --detach "$scratch" base
mkdir -p "$build"
n=0
start=$(date +%s)
for c in $commits; do
	n=$((n + 1))
	git -C "$scratch" checkout -q --detach "$c"
	sh_log "patch $n: $(git -C "$scratch" log -1 --format=%s)"
	# The config is made afresh at every step from the same fragment: a symbol the series has
	# not added yet is dropped, and comes back (with its fragment value) once it exists.
	sh_kconfig "$scratch" "$build" "$SH_ROOT/configs/sched_hint.config"
	if grep -q "^config SCHED_HINT$" "$scratch/init/Kconfig" &&
		! sh_config_has "$build" CONFIG_SCHED_HINT=y; then
		sh_die "patch $n: CONFIG_SCHED_HINT exists but is not enabled"
	fi
	make -s -C "$scratch" O="$build" "${kargs[@]}" all ||
		sh_die "patch $n does not build: $(git -C "$scratch" log -1 --format=%s)"
done
git -C "$tree" worktree remove --force "$scratch"
sh_log "each of the $n patches builds ($(($(date +%s) - start)) s)"
