-- Test pack for recovery: the state after a restore (snapshot + replay) must
-- equal that of an instance that was never disturbed. Timers fire on ticks and
-- draw from the instance RNG; a trigger is throttled in instance time.
function on_init(ctx)
  state.set("n", 0)
  state.set("pulses", 0)
  timer.every(100, "pulse")
end

function pulse()
  local r = rand.int(1, 1000000)
  state.incr("pulses")
  state.set("last", r)
  ui.broadcast("pulse " .. state.get("pulses") .. " " .. r)
end

function on_hit(p)
  state.incr("hits")
  ui.broadcast("hit " .. state.get("hits") .. " " .. math.random(1, 1000000))
end

ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n") .. " r=" .. rand.int(1, 1000))
end)

function total() return state.get("n") or 0 end

-- C code that runs long without a hook: only the watchdog stops it.
function backtrack()
  return string.find(string.rep("a", 20000), ".-.-.-.-.-.-.-b")
end
