#!/usr/bin/env bash
# The repository keeps one copy of each file that the series adds to the kernel (the uapi
# header, Documentation, selftests). Check that the series carries the same bytes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/check-series-sync.sh [REV]
  Compares every file under include/, Documentation/ and tools/ of this repository that
  also exists in REV of the kernel work tree (default: the commit patches/series builds,
  branch 'series'). Needs that work tree: 'scripts/kernel.sh --tree-only' makes it (as
  'make check-series' does first). Exits 1 on any difference.
USAGE
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
rev=${1:-series}
tree=$SH_CACHE/linux
git -C "$tree" rev-parse -q --verify "$rev^{commit}" >/dev/null ||
	sh_die "no '$rev' in $tree: run scripts/kernel.sh --tree-only first"

bad=0 n=0
while IFS= read -r f; do
	# Files that only this repository has (e.g. repo docs) are not in the series.
	git -C "$tree" cat-file -e "$rev:$f" 2>/dev/null || continue
	n=$((n + 1))
	if ! cmp -s <(git -C "$tree" show "$rev:$f") "$SH_ROOT/$f"; then
		sh_log "differs from the series: $f"
		bad=1
	fi
done < <(cd "$SH_ROOT" && git ls-files --cached --others --exclude-standard include Documentation tools)
((bad == 0)) || sh_die "the series and the repository disagree (see above)"
sh_log "series sync: $n shared files identical"
