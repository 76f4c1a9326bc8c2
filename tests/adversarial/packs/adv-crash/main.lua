-- Ordinary part: a counter the test uses to show the instance still serves.
ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n"))
end)
function total() return state.get("n") or 0 end

-- Crash: break the interpreter's and the boundary's limits.

ev.on("loop", function() ev.emit("loop") end)

function crash_c_stack_gsub()
  local function f(s) return (string.gsub(s, ".", f)) end
  return f("ab")
end
function crash_index_recursion()
  local t = setmetatable({}, {})
  getmetatable(t).__index = function(tt, k) return tt[k] end
  return t.x
end
function crash_tostring_recursion()
  return tostring(setmetatable({}, {__tostring = function(t) return tostring(t) end}))
end
function crash_pcall_nesting()
  local function f() return pcall(f) end
  local ok = f()
  error("nested pcall ended: " .. tostring(ok))
end
function crash_deep_return()
  local t = {}
  for i = 1, 100 do t = {t} end
  return t
end
function crash_deep_state()
  local t = {}
  for i = 1, 40 do t = {t} end
  state.set("deep", t)
end
function crash_deep_emit()
  local t = {}
  for i = 1, 40 do t = {t} end
  ev.emit("deep", t)
end
function crash_cycle_return()
  local t = {}
  t.self = t
  return t
end
function crash_nan_key()
  local t = {}
  t[0 / 0] = 1
end
function crash_unpack_huge() return select("#", table.unpack({}, 1, 1 << 40)) end
function crash_select_many()
  local t = {}
  for i = 1, 200000 do t[i] = i end
  return select("#", table.unpack(t))
end
function crash_return_many()
  local t = {}
  for i = 1, 1000 do t[i] = i end
  return table.unpack(t)
end
function crash_error_tostring_errors()
  error(setmetatable({}, {__tostring = function() error("tostring failed") end}))
end
function crash_error_tostring_loops()
  error(setmetatable({}, {__tostring = function() while true do end end}))
end
function crash_error_tostring_nonstring()
  error(setmetatable({}, {__tostring = function() return {} end}))
end
function crash_error_nil() error(nil) end
function crash_error_table() error({code = 42}) end
function crash_format_bad() return string.format("%z", 1) end
function crash_format_p() return string.format("%p", {}) end
function crash_format_q_table() return string.format("%q", {}) end
function crash_long_effect()
  local s = string.rep("x", 3 << 20)
  for i = 1, 5 do ui.broadcast(s) end
  return "sent"
end
function crash_effect_flood()
  for i = 1, 2000 do ui.broadcast("e" .. i) end
end
function crash_log_flood()
  local line = string.rep("L", 100000)
  for i = 1, 5000 do print(i, line) end
  return "logged"
end
function crash_emit_cascade() ev.emit("loop") end
function crash_return_function() return function() end end
function crash_return_coroutine() return coroutine.create(print) end
function crash_close_error()
  local x <close> = setmetatable({}, {__close = function() error("close failed") end})
  error("first")
end
function crash_close_running() return coroutine.close(coroutine.running()) end
function crash_table_move() return table.move({}, 1, math.maxinteger, 2) end
function crash_string_byte_many() return string.byte(string.rep("b", 1 << 20), 1, -1) end
function crash_bad_key_pairs()
  local t = {[{}] = 1}
  for k in pairs(t) do end
end
function crash_error_long() error(string.rep("E", 1 << 20), 0) end
