#!/usr/bin/env bash
# Build the sched_hint kernel (base + patches/series) or the baseline (base alone), out of tree.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/kernel.sh [--baseline] [--debug | --kcsan] [--print-dir] [--tree-only]
  Builds into \$SCHED_HINT_CACHE/build/<flavour> (default cache ~/.cache/sched_hint):
    patched    base + patches/series (the default)
    baseline   the same base and config without the series (--baseline)
    *-debug    plus configs/debug.config: KASAN, lockdep (--debug)
    *-kcsan    plus configs/kcsan.config: KCSAN, strict (--kcsan)
  The patched source tree is a git work tree at \$SCHED_HINT_CACHE/linux; the series is
  applied with 'git am' and checked out so that only files whose content changed get
  new timestamps, and make rebuilds incrementally. A stamp of base + series + config
  skips make entirely when nothing changed.
  --print-dir   print the build directory and exit
  --tree-only   apply the series to the work tree, do not build
USAGE
}

flavour_flags=() debug=0 kcsan=0 print_dir=0 tree_only=0
for a in "$@"; do
	case $a in
	--baseline) flavour_flags+=("$a") ;;
	--debug) debug=1 flavour_flags+=("$a") ;;
	--kcsan) kcsan=1 flavour_flags+=("$a") ;;
	--print-dir) print_dir=1 ;;
	--tree-only) tree_only=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
flavour=$(sh_flavour "${flavour_flags[@]}")
build=$SH_CACHE/build/$flavour
if ((print_dir)); then
	echo "$build"
	exit 0
fi

ksrc=$(sh_ksrc)
tree=$SH_CACHE/linux

# The patched work tree: a git repository whose first commit is the base.
ensure_git_tree() {
	if [[ -d $tree/.git ]] && git -C "$tree" rev-parse -q --verify refs/tags/base >/dev/null; then
		return
	fi
	sh_log "creating git work tree $tree from $ksrc (one-time, ~2 min)"
	rm -rf "$tree"
	mkdir -p "$tree"
	cp -a "$ksrc/." "$tree/"
	git -C "$tree" init -q
	git -C "$tree" config user.name "sched_hint developers"
	git -C "$tree" config user.email "sched-hint@example.org"
	git -C "$tree" config gc.auto 0
	git -C "$tree" add -A -f  # Debian's .gitignore ignores the whole top level
	git -C "$tree" commit -q -m "Linux $(make -s -C "$ksrc" kernelversion)" --no-verify
	git -C "$tree" tag base
}

# git am into a scratch work tree, then check the result out in the build tree:
# a checkout between two commits rewrites only the files that differ.
apply_series() {
	local scratch=$SH_CACHE/am-scratch target
	git -C "$tree" worktree remove --force "$scratch" 2>/dev/null || rm -rf "$scratch"
	git -C "$tree" worktree prune
	git -C "$tree" worktree add -q --detach "$scratch" base
	local p
	while read -r p; do
		[[ -z $p || $p == \#* ]] && continue
		if ! git -C "$scratch" am -q --whitespace=nowarn "$SH_ROOT/patches/$p"; then
			git -C "$scratch" am --abort || true
			sh_die "patch does not apply: patches/$p"
		fi
	done <"$SH_ROOT/patches/series"
	target=$(git -C "$scratch" rev-parse HEAD)
	git -C "$tree" worktree remove --force "$scratch"
	if [[ $(git -C "$tree" rev-parse 'HEAD^{tree}') != $(git -C "$tree" rev-parse "$target^{tree}") ]] ||
		[[ -n $(git -C "$tree" status --porcelain --untracked-files=no) ]]; then
		sh_log "checking out the series in $tree"
		git -C "$tree" checkout -q -f --detach "$target"
	fi
	git -C "$tree" branch -f series "$target" >/dev/null
}

fragments=("$SH_ROOT/configs/sched_hint.config")
((debug)) && fragments+=("$SH_ROOT/configs/debug.config")
((kcsan)) && fragments+=("$SH_ROOT/configs/kcsan.config")

if [[ $flavour == baseline* ]]; then
	src=$ksrc
	series_id=none
else
	ensure_git_tree
	apply_series
	src=$tree
	series_id=$(git -C "$tree" rev-parse 'HEAD^{tree}')
fi
((tree_only)) && { echo "$src"; exit 0; }

mkdir -p "$build"
mapfile -t kargs < <(sh_kmake_args)
stamp_want=$( {
	make -s -C "$src" kernelversion
	echo "$series_id"
	cat "${fragments[@]}"
	printf '%s\n' "${kargs[@]}"
} | sha256sum | cut -c1-16)
stamp=$build/.sched_hint-stamp
if [[ -f $stamp && $(cat "$stamp") == "$stamp_want" && -f $build/arch/x86/boot/bzImage ]]; then
	sh_log "kernel $flavour: up to date ($build)"
	exit 0
fi

cfg_want=$(cat "${fragments[@]}" | sha256sum | cut -c1-16)
if [[ ! -f $build/.config || $(cat "$build/.sched_hint-config" 2>/dev/null) != "$cfg_want" ]]; then
	sh_log "kernel $flavour: configuring from tinyconfig + ${fragments[*]##*/}"
	sh_kconfig "$src" "$build" "${fragments[@]}"
	# A fragment line that Kconfig silently dropped would give a kernel that tests
	# something else; fail loudly instead. The baseline has no SCHED_HINT symbols.
	missing=0
	while IFS= read -r line; do
		[[ $line =~ ^CONFIG_[A-Z0-9_]+= ]] || continue
		[[ $flavour == baseline* && $line == CONFIG_SCHED_HINT* ]] && continue
		sh_config_has "$build" "$line" || { sh_log "config: '$line' did not stick"; missing=1; }
	done < <(cat "${fragments[@]}")
	((missing == 0)) || sh_die "config fragment not satisfied (see above)"
	echo "$cfg_want" >"$build/.sched_hint-config"
fi

sh_log "kernel $flavour: building in $build (-j$SH_JOBS)"
start=$(date +%s)
make -s -C "$src" O="$build" "${kargs[@]}" all
sh_log "kernel $flavour: built in $(($(date +%s) - start)) s"
echo "$stamp_want" >"$stamp"
