#!/usr/bin/env bash
# make demo: starts moonpend with the example packs in a temporary folder, runs
# the sample game server against it, prints the effects, stops the supervisor.
set -euo pipefail
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/moonpen-demo.XXXXXX)
url="ipc://$tmp/run/api.sock"
cleanup() {
	if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"; wait "$pid" || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
"$top/$BUILD/bin/moonpend" --listen "$url" --packs "$top/examples/packs" \
	--run-dir "$tmp/run" --state-dir "$tmp/state" --log-level warn 2>"$tmp/moonpend.log" &
pid=$!
for _ in $(seq 1 100); do [ -S "$tmp/run/api.sock" ] && break; sleep 0.05; done
echo "moonpend running (pid $pid) on $url"
echo
"$top/$BUILD/bin/game-server" --url "$url"
rc=$?
echo
echo "moonpenctl, the same protocol from the command line:"
ctl() { "$top/$BUILD/bin/moonpenctl" --url "$url" "$@"; }
ctl create demo-1 --pack key-collection --seed 7
ctl event demo-1 OnPickup:key '{"player":"p2"}'
echo "a query: the event waits on inventory.count (status pending, exit status 1) until answered"
pending=$(ctl event demo-1 OnAreaEnter:vault '{"player":"p2"}' || true)
echo "$pending"
call=$(sed -n 's/.*"host_call":{"call_id":\([0-9]*\),.*/\1/p' <<<"$pending")
ctl answer demo-1 "${call:?no host_call in the reply}" 1
ctl list
ctl close demo-1
if [ -s "$tmp/moonpend.log" ]; then echo; echo "moonpend warnings:"; cat "$tmp/moonpend.log"; fi
exit $rc
