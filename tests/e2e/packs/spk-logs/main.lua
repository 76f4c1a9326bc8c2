-- Test pack: log lines at every level, from on_init and from events; "flood"
-- logs more lines than the worker keeps for one input.
function on_init(ctx)
	log.info("ready")
end

ev.on("greet", function(p)
	log.debug("greeting", p.player)
	print("hello " .. p.player, 42)
	log.warn("careful")
	local n = state.incr("greets")
	log.error("greets=" .. n)
	ui.broadcast("hi " .. p.player)
end)

ev.on("flood", function(p)
	for i = 1, p.lines do
		log.info("line " .. i)
	end
end)
