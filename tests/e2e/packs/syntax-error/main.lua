-- Test pack: does not compile.
ev.on("x", function(p)
  if p.a then
end)
