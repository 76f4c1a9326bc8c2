-- Benchmark pack: an instance whose state holds a blob of a chosen size, so that
-- the time to recover it (restore or replay) can be measured per state size.
local function fill(bytes)
  return function() state.set("blob", string.rep("x", bytes)) end
end
ev.on("fill1k", fill(1024))
ev.on("fill100k", fill(100 * 1024))
ev.on("fill1m", fill(1024 * 1024))

-- The probe: one state write, no effect.
ev.on("ping", function() state.incr("n") end)
