-- Benchmark pack: an instance that runs away on request, next to well-behaved
-- neighbours.

-- Lua code that never ends: stopped by the soft deadline (the armed hook).
function forever() while true do end end

-- C code that runs long without a hook (backtracking in string.find): only the
-- supervisor's hard deadline (SIGKILL of the worker) stops it.
function backtrack()
  return string.find(string.rep("a", 20000), ".-.-.-.-.-.-.-b")
end
