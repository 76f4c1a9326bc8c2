-- Test pack: a counter in a chunk-level local, outside `state`. Right within
-- one worker; wrong after a snapshot and restore (the chunk re-runs, the
-- local starts again at 0, `state` comes back from the snapshot).
local bumps = 0

ev.on("bump", function(ctx)
	bumps = bumps + 1
	local n = state.incr("n")
	ui.broadcast("bump " .. bumps .. " n=" .. n)
end)
