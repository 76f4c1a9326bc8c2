-- key-collection: three key pickups summon the boss.
--
-- The reactions are declared in manifest.json: trigger "key-pickup" calls the
-- global function pick_key on every OnPickup:key event; trigger
-- "boss-arrives" (after it, in manifest order) spawns the boss and switches
-- the music once state says three keys are in. Durable data lives in `state`.

function on_init(ctx)
	state.set("keys", 0)
end

-- A trigger action named by the manifest: a global function, defined at the
-- top level so that it exists again after every restore.
function pick_key(ctx)
	local k = state.incr("keys")
	ui.broadcast("Keys: " .. k .. "/3")
end
