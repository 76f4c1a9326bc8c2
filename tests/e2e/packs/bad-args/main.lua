-- Test pack: calls a host API with the wrong argument types.
ev.on("spawn_number", function(p) ecs.spawn(5) end)
ev.on("spawn_ok", function(p) ecs.spawn("goblin") end)
