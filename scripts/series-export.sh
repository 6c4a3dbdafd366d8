#!/usr/bin/env bash
# Export the commits of the kernel work tree into patches/ as a git format-patch series.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/series-export.sh [REV]
  Writes base..REV (default: the work tree's 'dev' branch) of \$SCHED_HINT_CACHE/linux
  to patches/NNNN-*.patch and patches/series. patches/0000-cover-letter.patch and
  patches/BASE are kept as they are. Then checks that the repository's copies of the
  files the series adds (uapi header, Documentation, selftests) match the series.
USAGE
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
rev=${1:-dev}
tree=$SH_CACHE/linux
[[ -d $tree/.git ]] || sh_die "no work tree at $tree: run scripts/kernel.sh --tree-only first"

find "$SH_ROOT/patches" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' -delete
git -C "$tree" format-patch -q --no-signature --zero-commit --start-number 1 \
	-o "$SH_ROOT/patches" "base..$rev"
# shellcheck disable=SC2010 # git format-patch's own file names
(cd "$SH_ROOT/patches" && ls -1 [0-9][0-9][0-9][0-9]-*.patch | grep -v '^0000-') >"$SH_ROOT/patches/series"
sh_log "exported $(wc -l <"$SH_ROOT/patches/series") patches"
exec "$SH_ROOT/scripts/check-series-sync.sh" "$rev"
