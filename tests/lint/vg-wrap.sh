#!/bin/sh
# vg-wrap.sh BINARY [ARGS...] — runs a Criterion suite under valgrind memcheck
# (make test-valgrind). Criterion reports a test as passed before its process
# exits, so valgrind's exit code at the end of a test child is lost; instead
# every process (runner, test children, moonpend in e2e tests) writes its own
# log (--quiet: only errors and leaks), and any non-empty log fails the suite.
# VALGRIND_OPTS_EXTRA adds options; VALGRIND_SKIP names exec'd programs not
# to trace (default: moonpen-worker, which seccomp confines; docs/quality.md).
bin=$1
shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/vg.XXXXXX")
here=$(cd "$(dirname "$0")" && pwd)
# moonpend runs each worker under its own valgrind (--worker-wrapper, which
# makes the worker skip seccomp: docs/quality.md); the outer valgrind does not
# trace that exec. Worker logs land in the same folder and are judged alike.
MOONPEN_TEST_WORKER_WRAPPER="$(command -v valgrind) --quiet --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
--suppressions=$here/valgrind.supp --log-file=$dir/vg.%p"
export MOONPEN_TEST_WORKER_WRAPPER
valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --track-origins=yes \
	--trace-children=yes --child-silent-after-fork=yes \
	--trace-children-skip="${VALGRIND_SKIP-*/valgrind,*/moonpen-worker}" \
	--suppressions="$here/valgrind.supp" --log-file="$dir/vg.%p" \
	${VALGRIND_OPTS_EXTRA:-} "$bin" "$@"
rc=$?
bad=0
for f in "$dir"/vg.*; do
	[ -s "$f" ] || continue
	bad=1
	echo "valgrind: errors in process ${f##*.}:"
	sed 's/^/    /' "$f"
done
rm -rf "$dir"
if [ "$bad" -ne 0 ]; then
	echo "valgrind: memcheck errors or leaks (see above)"
	exit 99
fi
exit "$rc"
