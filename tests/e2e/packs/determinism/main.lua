-- Test pack: everything here would differ between two processes on stock Lua
-- (string-hash seed, addresses); moonpen must make it identical.
ev.on("walk", function(p)
  local t = {}
  for i = 1, 40 do t["key" .. (i * 7919 % 101)] = i end
  t.zebra, t.apple, t.mango = 1, 2, 3
  for k, v in pairs(t) do ui.broadcast(k .. "=" .. v) end
  ui.broadcast(tostring({}) .. " " .. tostring(print))
  ui.broadcast(string.format("%d %d", rand.int(1, 1000000), math.random(1, 1000000)))
end)
