-- dungeon-forest: waves of goblins on a timer; the lever and the boss-room
-- greeting are manifest triggers (manifest.json). Durable state lives in
-- `state` only; the wave timer names a global function so that snapshots can
-- restore it.

function on_init(ctx)
	state.set("wave", 0)
	timer.every(5000, "spawn_wave")
end

function spawn_wave()
	local w = state.incr("wave")
	ui.broadcast("Wave " .. w .. " incoming")
	for i = 1, 5 do
		ecs.spawn("goblin", { pos = { x = 5 * i, y = 0, z = 10 } })
	end
	if w == 3 then
		ecs.spawn("ogre", { pos = { x = 20, z = 20 } })
	end
end
