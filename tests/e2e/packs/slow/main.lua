-- Test pack: honest CPU work of a chosen size (the concurrency test).
function spin(n)
  local x = 0
  for i = 1, n do x = x + i % 7 end
  return x
end

function ping() return "pong" end
