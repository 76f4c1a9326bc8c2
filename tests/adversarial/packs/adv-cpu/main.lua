-- Ordinary part: a counter the test uses to show the instance still serves.
ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n"))
end)
function total() return state.get("n") or 0 end

-- CPU: loops of every kind. Lua code is stopped by the soft deadline (hook,
-- uncatchable); C code without hooks (pattern backtracking) by the watchdog.

function cpu_while() while true do end end
function cpu_repeat() local x = 0 repeat x = x + 1 until false end
function cpu_numeric_for() local x = 0 for i = 1, math.maxinteger do x = x ~ i end return x end
function cpu_generic_for()
  local x = 0
  for v in function() return 1 end do x = x + v end
end
function cpu_goto()
  local n = 0
  ::top::
  n = n + 1
  goto top
end
function cpu_recursion()
  local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end
  while true do f(150) end
end
function cpu_tail_call()
  local function f(n) return f(n + 1) end
  return f(0)
end
function cpu_mutual_tail_calls()
  local a, b
  a = function(n) return b(n + 1) end
  b = function(n) return a(n - 1) end
  return a(0)
end
function cpu_pcall_loop()
  while true do pcall(error, "again") end
end
function cpu_nested_pcall()
  while true do pcall(pcall, pcall, function() while true do end end) end
end
function cpu_xpcall_handler()
  return xpcall(error, function() while true do end end, "boom")
end
function cpu_xpcall_retry()
  while true do xpcall(function() while true do end end, function(m) return m end) end
end
function cpu_sort_comparator()
  local t = {}
  for i = 1, 100 do t[i] = 101 - i end
  table.sort(t, function(a, b) while true do end end)
end
function cpu_coroutine_pingpong()
  local a, b
  a = coroutine.wrap(function() while true do b() coroutine.yield() end end)
  b = coroutine.wrap(function() while true do coroutine.yield() end end)
  while true do a() end
end
function cpu_coroutine_inner_loop()
  local co = coroutine.create(function() while true do end end)
  while true do coroutine.resume(co) end
end
function cpu_gsub_callback()
  return string.gsub("abc", ".", function() while true do end end)
end
function cpu_mm_index()
  local t = setmetatable({}, {__index = function() while true do end end})
  return t.x
end
function cpu_mm_newindex()
  local t = setmetatable({}, {__newindex = function() while true do end end})
  t.x = 1
end
function cpu_mm_eq()
  local mt = {__eq = function() while true do end end}
  return setmetatable({}, mt) == setmetatable({}, mt)
end
function cpu_mm_lt()
  local mt = {__lt = function() while true do end end}
  return setmetatable({}, mt) < setmetatable({}, mt)
end
function cpu_mm_concat()
  return setmetatable({}, {__concat = function() while true do end end}) .. "x"
end
function cpu_mm_len()
  return #setmetatable({}, {__len = function() while true do end end})
end
function cpu_mm_call()
  return setmetatable({}, {__call = function() while true do end end})()
end
function cpu_mm_close()
  local x <close> = setmetatable({}, {__close = function() while true do end end})
  return 1
end
function cpu_mm_close_on_error()
  local x <close> = setmetatable({}, {__close = function() while true do end end})
  error("first")
end
function cpu_mm_tostring()
  return tostring(setmetatable({}, {__tostring = function() while true do end end}))
end
function cpu_gc_refused()
  setmetatable({}, {__gc = function() while true do end end})
  return "finalizer installed"
end

-- C code without hooks: the watchdog kills the worker.
function cpu_backtrack_find()
  return string.find(string.rep("a", 20000), ".-.-.-.-.-.-.-b")
end
function cpu_backtrack_gsub()
  return string.gsub(string.rep("a", 20000), ".-.-.-.-.-.-.-b", "x")
end
function cpu_backtrack_gmatch()
  local n = 0
  for m in string.gmatch(string.rep("ab", 10000), "a.-.-.-.-.-.-c") do n = n + 1 end
  return n
end
function cpu_backtrack_match()
  return string.match(string.rep("x", 30000), "(.-)(.-)(.-)(.-)(.-)y")
end
function cpu_rep_optional()
  -- the classic exponential: "a?"^n "a"^n against "a"^n
  local n = 32
  return string.find(string.rep("a", n), string.rep("a?", n) .. string.rep("a", n))
end
