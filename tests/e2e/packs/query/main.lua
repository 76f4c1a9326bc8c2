-- Test pack for async queries: events ask the game server (bank.balance),
-- wait for the answer, and act on it.
function on_init(ctx)
  state.set("gold", 0)
end

ev.on("loot", function(p)
  ui.broadcast("opening chest for " .. p.player)
  local amount, err = bank.balance(p.player)
  if amount == nil then
    ui.broadcast("no loot: " .. err)
    return
  end
  state.set("gold", state.get("gold") + amount)
  ui.broadcast("loot " .. amount)
end)

-- two queries in one input
ev.on("trade", function(p)
  local a = bank.balance(p.player)
  local b = bank.balance(p.other)
  state.set("gold", state.get("gold") + a + b)
  ui.broadcast("trade " .. a .. "+" .. b)
end)

ev.on("bump", function(p)
  state.set("gold", state.get("gold") + 1)
  ui.broadcast("bump")
end)

function gold()
  return state.get("gold")
end
