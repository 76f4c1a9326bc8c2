-- Test pack for rate limits: every event that reaches the script counts once.
function on_init(ctx)
	state.set("n", 0)
end

function count(ctx)
	state.incr("n")
end

ev.on("hit", count)

function applied()
	return state.get("n")
end
