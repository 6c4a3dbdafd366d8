#!/bin/bash
# build-job.sh DIR FILES LINES: the serving bench's build-like neighbour, a tree of FILES C
# files of LINES statements each and a Makefile, which `make -B` rebuilds in a loop. Used by
# the host lane (scripts/bench-serving.sh) and the guest lane (ci/guest-serving.sh), with
# sizes that fit each.
set -eu
dir=$1 files=$2 lines=$3
mkdir -p "$dir"
for i in $(seq "$files"); do
	{
		echo "double f$i(double x) {"
		for j in $(seq "$lines"); do echo "  x = x * 1.000001 + $j.0 / (x + $i.5);"; done
		echo "  return x; }"
	} >"$dir/u$i.c"
done
cat >"$dir/Makefile" <<'MAKE'
objs := $(patsubst %.c,%.o,$(wildcard *.c))
all: $(objs)
%.o: %.c
	$(CC) -O2 -c $< -o $@
MAKE
