-- Test pack: an ordinary counter, and functions that misbehave on request.
ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n"))
end)

function total() return state.get("n") or 0 end

-- Lua code that never ends: stopped by the soft deadline (hook), uncatchably.
function forever() while true do end end
function forever_pcall()
  while true do pcall(function() while true do end end) end
end

-- C code that runs long without a hook: only the watchdog stops it.
function backtrack()
  return string.find(string.rep("a", 20000), ".-.-.-.-.-.-.-b")
end
