-- Test pack for spk lint: every line marked "finding" must be reported.
local count = 0
local t = { count = 1, f = function(x) return x end }

function on_init(ctx)
	timer.every(1000, function() end) -- finding: anonymous timer function
	timer.every(1000, "tick_global")
end

local function helper() end

function tick_global()
	local n = 0
	n = n + 1
	count = count + 1 -- finding: chunk-level local written in a function
	leaked = true -- finding: global assigned in a function
	ev.on("late", function() end) -- finding: ev.on inside a function
	timer.after(500, helper) -- finding: local function as timer
	state.set("s", "count = 1 -- not code")
	t.count = 2
	for i, v in ipairs({}) do
		local w = i + v
		w = w * 2
	end
end

ev.on("early", function(ctx)
	local a, b = 1, 2
	a, b = b, a
end)
