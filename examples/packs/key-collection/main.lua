-- key-collection: three key pickups summon the boss; the vault opens for a
-- player who carries three keys.
--
-- The pickup reactions are declared in manifest.json: trigger "key-pickup"
-- calls the global function pick_key on every OnPickup:key event; trigger
-- "boss-arrives" (after it, in manifest order) spawns the boss and switches
-- the music once state says three keys are in. Durable data lives in `state`.
--
-- The vault door is an ev.on handler that asks the game server a question:
-- inventories belong to the game server (keys can be traded or lost), so the
-- script calls the query inventory.count. The input waits (the game server
-- sees PENDING with the query, answers it with a HostResult) and the script
-- resumes with the answer, or with nil and the server's error text.

function on_init(ctx)
	state.set("keys", 0)
end

-- A trigger action named by the manifest: a global function, defined at the
-- top level so that it exists again after every restore.
function pick_key(ctx)
	local k = state.incr("keys")
	ui.broadcast("Keys: " .. k .. "/3")
end

ev.on("OnAreaEnter:vault", function(ctx)
	local held, err = inventory.count(ctx.player, "key")
	if held == nil then
		log.warn("inventory.count failed: " .. err)
		ui.tip(ctx.player, "The vault door does not answer.")
	elseif held >= 3 then
		ecs.openGate("vault")
		ui.broadcast(ctx.player .. " opens the vault")
	else
		ui.tip(ctx.player, "The vault needs 3 keys: you hold " .. held .. ".")
	end
end)
