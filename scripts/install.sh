#!/usr/bin/env bash
# Installs the tuner alone (no kernel toolchain needed): the binary, the systemd unit, the udev
# rule for /dev/sched_hint, the example configuration and the docs. PREFIX and DESTDIR as
# usual; the unit's paths are rewritten to PREFIX. An existing /etc/sched_hint/tuner.toml is
# kept (the example goes beside it as tuner.toml.example).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/install.sh [--bin PATH]
  PREFIX=/usr/local  DESTDIR=  SYSCONFDIR=/etc  UNITDIR=\$PREFIX/lib/systemd/system
  UDEVRULESDIR=\$PREFIX/lib/udev/rules.d  DOCDIR=\$PREFIX/share/doc/sched_hint
  --bin PATH   install this tuner binary (default: target/release/tuner, built if missing)
USAGE
}

bin=
while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--bin) bin=${2:?--bin needs a path}; shift 2 ;;
	*) usage >&2; sh_die "unknown argument: $1" ;;
	esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
UDEVRULESDIR=${UDEVRULESDIR:-$PREFIX/lib/udev/rules.d}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/sched_hint}

if [[ -z $bin ]]; then
	bin=$SH_ROOT/target/release/tuner
	[[ -x $bin ]] || (cd "$SH_ROOT" && cargo build --release -p tuner)
fi
[[ -x $bin ]] || sh_die "no tuner binary at $bin"

install -Dm755 "$bin" "$DESTDIR$PREFIX/bin/tuner"
install -d "$DESTDIR$UNITDIR"
sed -e "s#/usr/local/bin/tuner#$PREFIX/bin/tuner#g" \
	-e "s#/usr/local/share/doc/sched_hint#$DOCDIR#g" \
	"$SH_ROOT/configs/sched-hint-tuner.service" >"$DESTDIR$UNITDIR/sched-hint-tuner.service"
chmod 644 "$DESTDIR$UNITDIR/sched-hint-tuner.service"
install -Dm644 "$SH_ROOT/configs/99-sched-hint.rules" "$DESTDIR$UDEVRULESDIR/99-sched-hint.rules"
conf=$DESTDIR$SYSCONFDIR/sched_hint/tuner.toml
if [[ -e $conf ]]; then
	install -Dm644 "$SH_ROOT/configs/tuner.toml" "$conf.example"
	sh_log "kept $conf; the example is $conf.example"
else
	install -Dm644 "$SH_ROOT/configs/tuner.toml" "$conf"
fi
install -d "$DESTDIR$SYSCONFDIR/sched_hint/rules.d"
for doc in README.md Documentation/tuner-llm.md Documentation/tuner-trust-model.md \
	Documentation/scheduler/sched-hint.rst \
	Documentation/userspace-api/sched_hint.rst configs/tuner.toml; do
	install -Dm644 "$SH_ROOT/$doc" "$DESTDIR$DOCDIR/$(basename "$doc")"
done
sh_log "installed under ${DESTDIR:-/}: $PREFIX/bin/tuner, $UNITDIR/sched-hint-tuner.service, $UDEVRULESDIR/99-sched-hint.rules, $SYSCONFDIR/sched_hint/, $DOCDIR/"
