#!/usr/bin/env bash
# Writes the seed corpora of tests/fuzz/corpus/ (run once by hand; the outputs
# are checked in). Protobuf seeds are written in text format here and encoded
# with protoc --encode, so they stay readable. Run from the repository root,
# after `make all fuzz-build`: the snapshot seeds are real snapshots written by
# build-fuzz/bin/fuzz_snapshot (FUZZ_SNAPSHOT_SEEDS mode), the trace seeds are
# recorded by build/bin/spk (both skipped, with a warning, when missing).
set -euo pipefail
c=tests/fuzz/corpus
mkdir -p $c/request $c/from_worker $c/to_worker $c/value_lua $c/manifest $c/schema $c/json_value \
	$c/grants $c/trace $c/snapshot

# ---- snapshots (worker restore path), first: other seeds embed one ----
if [ -x build-fuzz/bin/fuzz_snapshot ]; then
	FUZZ_SNAPSHOT_SEEDS=$c/snapshot build-fuzz/bin/fuzz_snapshot >/dev/null 2>&1
else
	echo "make-seeds: no build-fuzz/bin/fuzz_snapshot (make fuzz-build): snapshot seeds kept" >&2
fi
SNAP=$c/snapshot/after-inputs
# a file as a text-format string ("\x0a\x05...")
hexstr() { od -An -v -tx1 "$1" | tr -d ' \n' | sed 's/../\\x&/g'; }

enc() { # enc <message type> <out file> <text>
	printf '%s\n' "$3" | protoc --proto_path=proto --encode="$1" proto/moonpen.proto proto/worker.proto >"$2"
}
VAL='table_value { array { int_value: 1 } array { string_value: "two" } array { float_value: 2.5 }
  map { key { string_value: "k" } value { bool_value: true } }
  map { key { int_value: 7 } value { table_value { array { nil_value {} } array { bytes_value: "\x00\xff" } } } } }'

# ---- API requests (sup_req_decode) ----
R=moonpen.v1.Request
enc $R $c/request/create 'id: 1 trace_id: "t-1" create { instance_id: "dungeon:1" pack_id: "dungeon-forest" pack_version: "1.0.0" seed: 42 tick_ms: 50 labels { key: "region" value: "eu" } }'
enc $R $c/request/event "id: 2 event { instance_id: \"dungeon:1\" name: \"OnAreaEnter:boss_room\" payload { $VAL } }"
enc $R $c/request/tick 'id: 3 tick { instance_id: "dungeon:1" count: 100 }'
enc $R $c/request/call "id: 4 call { instance_id: \"a.b-c\" function: \"open_gate\" args { int_value: -5 } args { $VAL } }"
enc $R $c/request/snapshot 'id: 5 snapshot { instance_id: "x" }'
enc $R $c/request/close 'id: 6 close { instance_id: "x" }'
enc $R $c/request/info 'id: 7 info { instance_id: "x" }'
enc $R $c/request/list 'id: 8 list {}'
enc $R $c/request/bad-utf8 'id: 9 event { instance_id: "i" name: "e" payload { string_value: "\xc3\x28" } }'
enc $R $c/request/host-result "id: 10 host_result { instance_id: \"q:1\" call_id: 3 value { $VAL } }"
enc $R $c/request/host-result-error 'id: 11 host_result { instance_id: "q:1" call_id: 18446744073709551615 error: "bank down" }'
enc $R $c/request/rollback 'id: 12 rollback { instance_id: "dungeon:1" tick: 100 }'
[ -f $SNAP ] && enc $R $c/request/restore "id: 13 restore { instance_id: \"fuzz:1\" snapshot: \"$(hexstr $SNAP)\" }"
enc $R $c/request/restore-junk 'id: 14 restore { instance_id: "x" snapshot: "\x08\x01\x12\x01x" }'
enc $R $c/request/trace 'id: 15 trace { instance_id: "dungeon:1" }'
enc $R $c/request/incident 'id: 16 incident { instance_id: "dungeon:1" }'

# ---- worker replies (supervisor side); 3 bytes first: expected seq, expected slot (BE) ----
F=moonpen.worker.v1.FromWorker
fw() { # fw <name> <seq> <slot> <text>
	printf "\\x$(printf %02x "$2")\\x$(printf %02x $(($3 >> 8)))\\x$(printf %02x $(($3 & 255)))" >$c/from_worker/$1
	enc $F /tmp/mp-seed.bin "$4"; cat /tmp/mp-seed.bin >>$c/from_worker/$1
}
fw hello 0 0 'seq: 0 hello { pid: 1234 layers: "seccomp" layers: "no_new_privs" missing: "userns: EPERM" }'
fw ok 1 0 "seq: 1 status { code: OK } result { effects { api: \"ecs\" fn: \"spawn\" args { string_value: \"goblin\" } args { $VAL } trigger_id: \"wave\" } returns { $VAL } tick: 10 state_hash: \"0123456789abcdef0123456789abcdef\" usage { cpu_us: 12 mem_bytes: 4096 } logs { level: \"info\" message: \"hi\" tick: 10 } }"
fw error 2 0 'seq: 2 status { code: SCRIPT_ERROR message: "main.lua:3: boom" traceback: "stack traceback:" retryable: false } result { tick: 3 }'
fw snapshot 3 0 'seq: 3 status { code: OK } snapshot: "\x01\x02state"'
fw pending 4 7 "seq: 4 slot: 7 status { code: PENDING } host_call { call_id: 1 api: \"bank\" fn: \"balance\" args { string_value: \"ada\" } args { $VAL } }"
fw pending-noid 5 0 'seq: 5 status { code: PENDING } host_call { api: "bank" fn: "" }'
fw slot-ok 6 1023 'seq: 6 slot: 1023 status { code: OK } result { tick: 4 state_hash: "0123456789abcdef0123456789abcdef" }'
[ -f $SNAP ] && fw snapshot-real 7 2 "seq: 7 slot: 2 status { code: OK } snapshot: \"$(hexstr $SNAP)\""
# PENDING replies as the instance thread checks them (sup_query_check_call), slots echoed or not
fw pending-ok 8 0 'seq: 8 status { code: PENDING } host_call { call_id: 3 api: "bank" fn: "balance" args { string_value: "ada" } }'
fw pending-msg 9 300 "seq: 9 slot: 300 status { code: PENDING message: \"waiting \xff\" } host_call { call_id: 18446744073709551615 api: \"b\xc3\xa9\" fn: \"ask\" args { $VAL } args { nil_value {} } }"
fw pending-bad-utf8 10 0 'seq: 10 status { code: PENDING } host_call { call_id: 2 api: "\xc3\x28" fn: "f" }'
fw pending-long-fn 11 0 "seq: 11 status { code: PENDING } host_call { call_id: 2 api: \"bank\" fn: \"$(printf 'f%.0s' $(seq 129))\" }"
fw pending-bad-arg 12 0 'seq: 12 status { code: PENDING } host_call { call_id: 2 api: "bank" fn: "f" args { string_value: "\xc3\x28" } }'
fw pending-noargval 13 0 'seq: 13 status { code: PENDING } host_call { call_id: 2 api: "bank" fn: "f" args { } }'
fw pending-nocall 14 0 'seq: 14 status { code: PENDING }'
fw slot-mismatch 15 5 'seq: 15 slot: 4 status { code: OK } result { tick: 4 }'
fw unknown-code 16 0 'seq: 16 status { code: 999 } result { tick: 4 }'

# ---- worker inputs (engine side): a conversation of ToWorker messages, each
# [2-byte big-endian length][encoded ToWorker]; slots 0 and 2 hold fuzz_to_worker's
# query pack, slots 1 and 3 are free ----
T=moonpen.worker.v1.ToWorker
tw() { # tw <name> <text>... (one message each)
	local out=$c/to_worker/$1 m n
	shift
	: >$out
	for m in "$@"; do
		enc $T /tmp/mp-seed.bin "$m"
		n=$(stat -c %s /tmp/mp-seed.bin)
		printf "\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))" >>$out
		cat /tmp/mp-seed.bin >>$out
	done
}
rm -f $c/to_worker/*
EV() { echo "seq: 1 slot: ${3:-0} event { instance_id: \"fuzz:1\" name: \"$1\" payload { $2 } }"; }
HR() { echo "seq: 2 slot: ${3:-0} host_result { instance_id: \"fuzz:1\" call_id: $1 $2 }"; }
ADA='table_value { map { key { string_value: "player" } value { string_value: "ada" } } }'
tw loot "$(EV loot "$ADA")" "$(HR 1 'value { int_value: 5 }')" 'seq: 3 snapshot {}'
tw loot-error "$(EV loot "$ADA")" "$(HR 1 'error: "bank down"')" 'seq: 3 call { function: "tostring" args { int_value: 1 } }'
tw loot-abort "$(EV loot "$ADA")" 'seq: 2 abort {}' 'seq: 3 snapshot {}' 'seq: 4 abort {}'
tw loot-wrong-id "$(EV loot "$ADA")" "$(HR 2 'value { int_value: 5 }')" "$(HR 1 "value { $VAL }")"
tw loot-busy "$(EV loot "$ADA")" "$(EV loot "$ADA")" 'seq: 3 tick { count: 2 }' 'seq: 4 snapshot {}' "$(HR 1 'value { int_value: 7 }')"
tw loot-close "$(EV loot "$ADA")" 'seq: 2 close {}' "$(HR 1 'value { int_value: 5 }')" 'seq: 4 init { instance_id: "x" }'
tw ask "$(EV ask "$VAL")" "$(HR 1 "value { $VAL }")" "$(HR 2 'value { string_value: "b" }')"
tw many "$(EV many 'int_value: 4')" "$(HR 1 'value { int_value: 1 }')" "$(HR 2 'value { int_value: 2 }')" \
	"$(HR 3 'value { int_value: 3 }')" "$(HR 4 'value { float_value: 4.5 }')" 'seq: 6 abort {}'
tw trigger "$(EV Ask 'string_value: "q"')" "$(HR 1 'value { bool_value: true }')"
tw pcall "$(EV pcall 'int_value: 1')" "$(HR 1 'value { int_value: 1 }')"
tw refused "$(EV sort 'int_value: 1')" "$(EV co 'int_value: 1')" "$(HR 1 'value { int_value: 1 }')"
tw call-ask "seq: 1 call { instance_id: \"fuzz:1\" function: \"ask\" args { $VAL } args { int_value: 3 } }" \
	"$(HR 1 'value { int_value: 9 }')" "$(HR 2 'error: "no"')"
tw tick-query 'seq: 1 tick { count: 5 }' "$(HR 1 'value { int_value: 3 }')" 'seq: 3 tick { count: 3 }' 'seq: 4 abort {}' 'seq: 5 tick { count: 100000 }'
tw slots "$(EV loot "$ADA" 2)" "$(EV loot "$ADA" 0)" "$(HR 1 'value { int_value: 5 }' 2)" 'seq: 4 slot: 0 abort {}' \
	'seq: 5 slot: 2 close {}' "$(EV loot "$ADA" 2)" 'seq: 7 slot: 1023 tick { count: 1 }' 'seq: 8 slot: 1 abort {}'
tw nothing-pending "$(HR 1 'value { int_value: 5 }')" 'seq: 2 abort {}' 'seq: 3 slot: 2 abort {}'
tw event-other "$(EV OnAreaEnter:boss_room 'table_value { map { key { string_value: "players" } value { int_value: 3 } } }')"
tw call-tostring 'seq: 3 call { instance_id: "k" function: "tostring" args { int_value: 3 } }'
tw call-init "seq: 3 call { instance_id: \"k\" function: \"on_init\" args { $VAL } }"
tw init 'seq: 0 slot: 1 init { instance_id: "k" pack_id: "k" pack_version: "1.0.0" manifest_json: "{\"id\":\"k\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\",\"apis\":[\"ui\"]}" files { path: "main.lua" data: "function on_init(ctx) state.set(\"n\", 1) end\nev.on(\"E\", function(ctx) ui.broadcast(\"x\" .. state.incr(\"n\")) end)" } host_api_json: "{\"version\":1,\"apis\":{\"ui\":{\"class\":\"deterministic\",\"functions\":{\"broadcast\":{\"kind\":\"effect\",\"params\":[{\"name\":\"t\",\"type\":\"string\"}]}}}}}" seed: 7 tick_ms: 50 limits { mem_bytes: 4194304 deadline_ms: 50 max_effects: 16 max_logs: 16 max_value_depth: 8 max_emit_depth: 4 } }' \
	'seq: 1 slot: 1 event { instance_id: "k" name: "E" }' 'seq: 2 slot: 1 tick { count: 1 }'
QS='{\"version\":1,\"apis\":{\"db\":{\"class\":\"deterministic\",\"functions\":{\"get\":{\"kind\":\"query\",\"params\":[{\"name\":\"k\",\"type\":\"string\"}],\"variadic\":\"any\"}}}}}'
tw init-query "seq: 0 slot: 3 init { instance_id: \"q\" pack_id: \"q\" pack_version: \"1.0.0\" manifest_json: \"{\\\"id\\\":\\\"q\\\",\\\"version\\\":\\\"1.0.0\\\",\\\"engine\\\":\\\"lua\\\",\\\"entry\\\":\\\"main.lua\\\",\\\"apis\\\":[\\\"db\\\",\\\"state\\\"]}\" files { path: \"main.lua\" data: \"ev.on(\\\"E\\\", function(p) state.set(\\\"v\\\", db.get(\\\"k\\\", p)) end)\nfunction f(...) return db.get(...) end\" } host_api_json: \"$QS\" seed: 7 tick_ms: 50 limits { mem_bytes: 4194304 deadline_ms: 50 max_value_depth: 8 } }" \
	"$(EV E "$VAL" 3)" "$(HR 1 "value { $VAL }" 3)" 'seq: 3 slot: 3 call { function: "f" args { string_value: "a" } }' "$(HR 2 'error: "x"' 3)"

# ---- Values (Value <-> Lua) ----
enc moonpen.v1.Value $c/value_lua/table "$VAL"
enc moonpen.v1.Value $c/value_lua/int 'int_value: -9223372036854775808'
enc moonpen.v1.Value $c/value_lua/float 'float_value: -0.0'
enc moonpen.v1.Value $c/value_lua/string 'string_value: "h\xc3\xa9llo"'
enc moonpen.v1.Value $c/value_lua/nested 'table_value { array { table_value { array { table_value { map { key { float_value: 1.5 } value { bool_value: false } } } } } } }'

# ---- text inputs ----
for p in examples/packs/* tests/e2e/packs/* tests/bench/packs/*; do
	[ -f "$p/manifest.json" ] && cp "$p/manifest.json" "$c/manifest/$(basename "$p").json"
done
cp policy/host_api.json $c/schema/host_api.json
printf '%s' '{"version":1,"apis":{"a":{"class":"deterministic","functions":{"f":{"kind":"effect","params":[{"name":"x","type":{"list":{"optional":"integer"}}}],"variadic":"any","returns":"table"}}}}}' >$c/schema/small.json
printf '%s' '{"a":[1,2.5,"x",null,true,{"$bytes":"AAE="}],"b":{"c":{}}}' >$c/json_value/mixed.json
printf '%s' '[[[[["deep"]]]]]' >$c/json_value/nested.json
printf '%s' '"a\u0000b"' >$c/json_value/nul.json
printf '%s' '-1.5e300' >$c/json_value/float.json

# ---- manifests with every rate_limits form and isolation ----
printf '%s' '{"id":"rl","version":"1.0.0","engine":"lua","entry":"main.lua","player_field":"who","isolation":"pool","triggers":[{"id":"t1","event":"E","action":"f"},{"id":"t2","event":"F.*","action":"g","throttle_ms":10}],"rate_limits":{"global":{"per_second":1000000},"per_player":{"per_second":1,"burst":1000000},"triggers":{"t1":{"per_second":5,"burst":1},"t2":{"per_second":2}}}}' >$c/manifest/rate-limits-all.json
printf '%s' '{"id":"iso","version":"1.0.0","engine":"lua","entry":"main.lua","isolation":"instance","rate_limits":{}}' >$c/manifest/isolation-instance.json

# ---- grants (grants_parse; "pattern\0id" inputs compare grants_match) ----
cp policy/grants.json $c/grants/policy.json
cp tests/e2e/packs/grants_all.json $c/grants/all.json
printf '%s' '{"version":1,"grants":[{"packs":["d?ngeon-*","*-forest","a.b-c_9","q*y"],"apis":["*"]},{"packs":["*"],"apis":["_x","bank"],"description":"d"}]}' >$c/grants/patterns.json
printf 'dungeon-*\0dungeon-forest' >$c/grants/match-star
printf 'a?c*x?\0abcxyzxy' >$c/grants/match-mixed
printf '*?*?*\0ab' >$c/grants/match-stars

# ---- traces (trace_parse + round trip) ----
if [ -x build/bin/spk ]; then
	t=$(mktemp -d)
	printf '%s\n' '{"event": "OnLeverSwitch", "payload": {"player": "ada"}}' '{"tick": 100}' \
		'{"event": "OnAreaEnter:boss_room", "payload": {"players": 3}}' '{"call": "spawn_wave", "args": []}' \
		'{"tick": 250}' '{"event": "OnLeverSwitch", "payload": {"player": "bob", "x": [1, 2.5, null, {"$bytes": "AAE="}]}}' >$t/ev1
	build/bin/spk run examples/packs/dungeon-forest --events $t/ev1 --seed 7 --record $c/trace/dungeon.json >/dev/null
	printf '%s\n' '{"event": "loot", "payload": {"player": "ada"}}' '{"event": "trade", "payload": {"player": "ada", "other": "bob"}}' \
		'{"event": "bump"}' '{"event": "loot", "payload": {"player": "cy"}}' >$t/ev2
	printf '%s\n' '{"value": 5}' '{"value": 7}' '{"value": 9}' '{"error": "bank down"}' >$t/ans
	build/bin/spk run tests/e2e/packs/query --events $t/ev2 --answers $t/ans --host-api tests/e2e/packs/host_api_query.json \
		--seed 18446744073709551615 --record $c/trace/query.json >/dev/null
	rm -rf $t
else
	echo "make-seeds: no build/bin/spk (make all): recorded trace seeds kept" >&2
fi
H=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
PK='"pack":{"id":"fuzz-snap","version":"1.0.0","content_hash":"'$H'"},"seed":4242,"tick_ms":50'
[ -f $SNAP ] && printf '%s' '{"format":1,'"$PK"',"start_snapshot":"'"$(base64 -w0 $SNAP)"'","inputs":[
{"index":0,"tick":3,"kind":"call","name":"sum","args":[1,2.5,"x",{"$bytes":"AAE="},[1,[2]],{"k":null}],"answers":[],"status":"OK","effects":[{"api":"game","fn":"fx","args":[3.5],"trigger":"call:sum"}],"returns":[3.5],"state_hash":"'$H'"}]}' >$c/trace/start-snapshot.json
printf '%s' '{"format":1,'"$PK"',"init":{"status":"OK","message":"m","effects":[],"returns":[]},"inputs":[
{"index":0,"tick":0,"kind":"event","name":"Hit","payload":null,"answers":[{"call_id":1,"error":"no"},{"call_id":"18446744073709551615","value":{"a":[true,-0.0,1e300]}}],"status":"SCRIPT_ERROR","message":"main.lua:1: boom","effects":[],"returns":[],"state_hash":"'$H'"},
{"index":1,"tick":0,"kind":"tick","count":100000,"status":"TIMEOUT","killed":true,"message":"hard deadline","effects":[],"returns":[]}]}' >$c/trace/killed.json
rm -f /tmp/mp-seed.bin
