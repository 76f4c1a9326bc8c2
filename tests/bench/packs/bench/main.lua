-- Benchmark pack: the smallest realistic handler (one state write, one effect).
ev.on("ping", function(p)
  state.incr("n")
  ui.broadcast("pong")
end)
