#!/usr/bin/env bash
# Run the kernel's checkpatch.pl --strict over every patch of patches/series.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: scripts/check-patches.sh   (checkpatch.pl --strict on each patch of patches/series)"
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
ksrc=$(sh_ksrc)
bad=0 n=0
while read -r p; do
	[[ -z $p || $p == \#* ]] && continue
	n=$((n + 1))
	# The series adds files at kernel paths; MAINTAINERS entries are the maintainers' call.
	if ! out=$(perl "$ksrc/scripts/checkpatch.pl" --strict --no-tree --quiet \
		--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG "$SH_ROOT/patches/$p" 2>&1); then
		printf '%s\n%s\n' "checkpatch: $p" "$out"
		bad=1
	fi
done <"$SH_ROOT/patches/series"
((bad == 0)) || sh_die "checkpatch --strict found problems"
sh_log "checkpatch --strict: $n patches clean"
