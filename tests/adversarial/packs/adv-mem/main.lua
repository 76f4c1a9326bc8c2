-- Ordinary part: a counter the test uses to show the instance still serves.
ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n"))
end)
function total() return state.get("n") or 0 end

-- Memory: the allocator refuses past the cap (16 MiB): MEMORY_LIMIT.

function mem_string_doubling()
  local s = "x"
  while true do s = s .. s end
end
function mem_table_bomb()
  local t = {}
  for i = 1, math.maxinteger do t[i] = {i} end
end
function mem_hash_bomb()
  local t = {}
  local i = 0
  while true do i = i + 1; t["k" .. i] = i end
end
function mem_nested_chain()
  local t = {}
  while true do t = {t, t} end
end
function mem_rep_huge() return #string.rep("x", 1 << 40) end
function mem_rep_overflow() return #string.rep("xx", math.maxinteger) end
function mem_rep_sep() return #string.rep("x", 1 << 30, "yy") end
function mem_coroutines()
  local t = {}
  while true do t[#t + 1] = coroutine.create(function() end) end
end
function mem_suspended_coroutines()
  local t = {}
  while true do
    local co = coroutine.create(function(...) coroutine.yield(...) end)
    coroutine.resume(co, string.rep("c", 1000))
    t[#t + 1] = co
  end
end
function mem_closures()
  local t = {}
  local i = 0
  while true do i = i + 1; t[i] = function() return i end end
end
function mem_concat_huge()
  local s = string.rep("y", 1 << 20)
  local t = {}
  for i = 1, 64 do t[i] = s end
  return #table.concat(t)
end
function mem_gsub_expand()
  return #string.gsub(string.rep("a", 1 << 16), "a", string.rep("b", 1 << 10))
end
function mem_pcall_retry()
  local caught = 0
  for i = 1, 50 do
    if not pcall(string.rep, "x", 64 << 20) then caught = caught + 1 end
  end
  return "survived", caught
end
function mem_utf8_bomb()
  local s = utf8.char(0x10FFFF, 0x7FFFFFFF)
  return #s:rep(4 << 20)
end
function mem_format_width() return string.format("%99999d", 1) end
function mem_format_big()
  local s = string.rep("f", 4 << 20)
  return #string.format("%s%s%s%s%s", s, s, s, s, s)
end
function mem_state_bomb()
  local s = string.rep("s", 6 << 20)
  state.set("a", s)
  state.set("b", s)
  state.set("c", s)
  return "stored"
end
function mem_effects_over_client_cap()
  -- 5 x 3.42 MB of effect text: under the worker reply cap (17 MiB), over the
  -- 16 MiB a client accepts
  local s = string.rep("x", 3420000)
  for i = 1, 5 do ui.broadcast(s) end
  return "sent"
end
function crash_effects_over_reply_cap()
  -- 6 x 3 MiB of effect text: more than a worker reply may carry (17 MiB)
  local s = string.rep("x", 3 << 20)
  for i = 1, 6 do ui.broadcast(s) end
  return "sent"
end

-- error with an 8 MiB message: the traceback copy passes the cap. Here, under the
-- pack's 2 s deadline, so a slow (sanitizer) build reaches the cap first too.
function crash_error_huge() error(string.rep("E", 8 << 20)) end

-- Infinite non-tail recursion: the Lua stack grows until the heap cap stops it (under ASan
-- that takes longer than 50 ms, hence this pack's deadline).
function crash_stack_overflow()
  local function f() return 1 + f() end
  return f()
end
