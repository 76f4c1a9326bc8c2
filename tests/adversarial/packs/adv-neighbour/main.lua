-- The neighbour: an ordinary pack whose effects and state hash depend on its
-- whole input history (counter, RNG draws, a periodic timer).
ev.on("hit", function(p)
  local n = state.incr("hits", p.n or 1)
  local roll = rand.int(1, 1000000)
  state.set("last", {n = n, roll = roll, tick = clock.tick()})
  ui.broadcast("hit " .. n .. " roll " .. roll)
end)

function on_init(ctx)
  timer.every(100, "beat")
end

function beat()
  local b = state.incr("beats")
  ui.broadcast("beat " .. b .. " at " .. clock.now())
end

function total() return state.get("hits") or 0 end
