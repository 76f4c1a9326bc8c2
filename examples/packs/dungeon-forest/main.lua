-- dungeon-forest: waves of goblins on a timer; the wave timer ("waves", every
-- 5 s), the lever and the boss-room greeting are declared in manifest.json.
-- Durable state lives in `state` only; the timer names a global function so
-- that snapshots can restore it (timer.id("waves") is its id, for cancel).

function on_init(ctx)
	state.set("wave", 0)
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
