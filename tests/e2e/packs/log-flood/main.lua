-- Test pack: each "wide" event logs as much as the worker keeps for one input
-- (256 lines of 4000 bytes), so that a trace of a few dozen inputs grows past
-- moonpend's reply limit.
local line = string.rep("x", 4000)

ev.on("wide", function()
	for _ = 1, 256 do
		log.info(line)
	end
	state.incr("n")
end)
