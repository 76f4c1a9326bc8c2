-- key-collection: three key pickups summon the boss.

function on_init(ctx)
	state.set("keys", 0)
end

-- Registered at the top level (never inside on_init): handlers are
-- re-registered on every load, including restores from a snapshot.
ev.on("OnPickup:key", function(ctx)
	local k = state.incr("keys")
	ui.broadcast("Keys: " .. k .. "/3")
	if k == 3 then
		ecs.spawn("boss_ogre", { pos = { x = 12, z = 8 } })
		music.play("boss_theme")
	end
end)
