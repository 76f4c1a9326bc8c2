#!/usr/bin/env bash
# Writes the seed corpora of tests/fuzz/corpus/ (run once by hand; the outputs
# are checked in). Protobuf seeds are written in text format here and encoded
# with protoc --encode, so they stay readable. Run from the repository root.
set -euo pipefail
c=tests/fuzz/corpus
mkdir -p $c/request $c/from_worker $c/to_worker $c/value_lua $c/manifest $c/schema $c/json_value

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

# ---- worker replies (supervisor side); first byte = expected seq ----
F=moonpen.worker.v1.FromWorker
fw() { printf "\\x$(printf %02x "$2")" >$c/from_worker/$1; enc $F /tmp/mp-seed.bin "$3"; cat /tmp/mp-seed.bin >>$c/from_worker/$1; }
fw hello 0 'seq: 0 hello { pid: 1234 layers: "seccomp" layers: "no_new_privs" missing: "userns: EPERM" }'
fw ok 1 "seq: 1 status { code: OK } result { effects { api: \"ecs\" fn: \"spawn\" args { string_value: \"goblin\" } args { $VAL } trigger_id: \"wave\" } returns { $VAL } tick: 10 state_hash: \"0123456789abcdef0123456789abcdef\" usage { cpu_us: 12 mem_bytes: 4096 } logs { level: \"info\" message: \"hi\" tick: 10 } }"
fw error 2 'seq: 2 status { code: SCRIPT_ERROR message: "main.lua:3: boom" traceback: "stack traceback:" retryable: false } result { tick: 3 }'
fw snapshot 3 'seq: 3 status { code: OK } snapshot: "\x01\x02state"'

# ---- worker inputs (engine side): ToWorker ----
T=moonpen.worker.v1.ToWorker
enc $T $c/to_worker/event 'seq: 1 event { instance_id: "k" name: "OnPickup:key" payload { table_value { map { key { string_value: "player" } value { string_value: "p1" } } } } }'
enc $T $c/to_worker/event-other 'seq: 1 event { instance_id: "k" name: "OnAreaEnter:boss_room" payload { table_value { map { key { string_value: "players" } value { int_value: 3 } } } } }'
enc $T $c/to_worker/tick 'seq: 2 tick { instance_id: "k" count: 5 }'
enc $T $c/to_worker/call "seq: 3 call { instance_id: \"k\" function: \"on_init\" args { $VAL } }"
enc $T $c/to_worker/call-tostring 'seq: 3 call { instance_id: "k" function: "tostring" args { int_value: 3 } }'
enc $T $c/to_worker/init 'seq: 0 init { instance_id: "k" pack_id: "key-collection" pack_version: "1.0.0" manifest_json: "{\"id\":\"k\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\",\"apis\":[\"ui\"]}" files { path: "main.lua" data: "function on_init(ctx) state.set(\"n\", 1) end\nev.on(\"E\", function(ctx) ui.broadcast(\"x\" .. state.incr(\"n\")) end)" } seed: 7 tick_ms: 50 limits { mem_bytes: 4194304 deadline_ms: 50 max_effects: 16 max_logs: 16 max_value_depth: 8 max_emit_depth: 4 } }'

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
rm -f /tmp/mp-seed.bin
