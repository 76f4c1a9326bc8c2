#!/usr/bin/env bash
# Runs every test binary given as an argument (Criterion suites), prints each
# suite's result and ends with one line over all suites: "N passed, N failed".
# A suite that crashes or prints no Criterion synthesis counts as one failure.
set -u
passed=0
failed=0
bad_suites=()
logdir=${TEST_LOG_DIR:-${BUILD:-build}/test-logs}
mkdir -p "$logdir"
for t in "$@"; do
	name=${t#*/tests/}
	log="$logdir/$(echo "$name" | tr / _).log"
	start=$(date +%s)
	timeout --kill-after=10 "${TEST_TIMEOUT:-900}" "$t" --jobs="${TEST_JOBS:-2}" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	syn=$(grep -a 'Synthesis:' "$log" | tail -1)
	if [ -n "$syn" ]; then
		p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
		f=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
		c=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
		p=${p:-0}; f=$((${f:-0} + ${c:-0}))
	else
		p=0; f=1
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p)); failed=$((failed + f))
	printf '%-40s %4d passed %4d failed  (%ss)\n' "$name" "$p" "$f" "$secs"
	if [ "$f" -ne 0 ]; then
		bad_suites+=("$name")
		grep -a -E '\[(FAIL|----)\]|Assertion|CRASH|Warning|signal' "$log" | head -40 | sed 's/^/    /'
		echo "    (full log: $log)"
	fi
done
if [ "${#bad_suites[@]}" -ne 0 ]; then echo "failing suites: ${bad_suites[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
