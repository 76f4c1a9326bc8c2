-- Ordinary part: a counter the test uses to show the instance still serves.
ev.on("add", function(p)
  state.incr("n", p.n or 1)
  ui.broadcast("n=" .. state.get("n"))
end)
function total() return state.get("n") or 0 end

-- Escape: reach for what the sandbox leaves out, or poison what it shares.

function esc_io() return io.open("/etc/passwd"):read("a") end
function esc_os() return os.execute("id") end
function esc_debug() return debug.getregistry() end
function esc_package() return package.loadlib("libc.so.6", "system") end
function esc_require_os() return require("os") end
function esc_require_traversal() return require("../../../etc/passwd") end
function esc_require_host_io() return require("host.io") end
function esc_dofile() return dofile("/etc/passwd") end
function esc_loadfile() return loadfile("/etc/passwd") end
function esc_collectgarbage() return collectgarbage("count") end
function esc_string_dump() return string.dump(total) end
function esc_string_method_dump() return ("x").dump end
function esc_binary_chunk()
  -- a hand-made Lua 5.4 header: ESC "Lua" 0x54 0 LUAC_DATA sizes LUAC_INT LUAC_NUM
  local hdr = "\27Lua\84\0\25\147\r\n\26\n\4\8\8" .. string.pack("<j", 0x5678) ..
    string.pack("<n", 370.5) .. "\1"
  local f, e = load(hdr, "=evil", "b")
  if f then return "LOADED" end
  error(e, 0)
end
function esc_load_reader()
  -- a reader function would let the chunk's first byte slip past a text check
  local parts = {"\27Lua", "\84\0"}
  local i = 0
  local f, e = load(function() i = i + 1 return parts[i] end)
  if f then return "LOADED" end
  error(e, 0)
end
function esc_load_env()
  local env = setmetatable({}, {__index = _G})
  local f = load("return tostring(io), tostring(os), tostring(debug), tostring(package)",
    "=probe", "t", env)
  return f()
end
function esc_string_metatable() return getmetatable("").__index end
function esc_string_metatable_type()
  return type(getmetatable("")), type(getmetatable(string)), type(getmetatable(state)),
    type(getmetatable(ui)), type(getmetatable(math)), type(getmetatable(_G))
end
function esc_poison_string() string.rep = function() return "pwned" end end
function esc_poison_state() state.get = function() return 1000 end end
function esc_poison_api() ui.broadcast = function() end end
function esc_rawset_library() rawset(string, "rep", print) end
function esc_rawset_G() rawset(_G, "evil", 1) end
function esc_setmetatable_G() setmetatable(_G, {__index = function() return "evil" end}) end
function esc_new_global() evil = 1 end
function esc_env_new_global() local _ENV = _G; evil2 = 1 end
function esc_poison_globals()
  -- reassigning existing globals is allowed (documented); the host never uses them,
  -- so the next input of this instance still behaves
  pairs = function() error("poisoned pairs") end
  ipairs = pairs
  tostring = function() return "pwned" end
  error = function() end
  type = function() return "pwned" end
  select = function() return 0 end
  return "poisoned"
end
function esc_gc() setmetatable({}, {__gc = function() end}) return "installed" end
function esc_gc_late()
  -- a __gc added after setmetatable is never marked for finalization
  local mt = {}
  setmetatable({}, mt)
  mt.__gc = function() while true do end end
  return "harmless"
end
function esc_yield_main() return coroutine.yield("out") end
function esc_wrap_yield_across()
  -- yield through a host function (state.get -> nothing to yield across) must fail cleanly
  local f = coroutine.wrap(function() table.sort({3, 2, 1}, function(a, b)
    coroutine.yield("escaped") return a < b end) end)
  return f()
end
local forbidden = {io = 1, os = 1, debug = 1, package = 1, dofile = 1, loadfile = 1,
  collectgarbage = 1, warn = 1, dump = 1, getregistry = 1, loadlib = 1,
  getupvalue = 1, setupvalue = 1, sethook = 1, execute = 1, open = 1, popen = 1}
function esc_scan_reachable()
  local found, seen = {}, {}
  local function scan(t, path, depth)
    if seen[t] or depth > 3 then return end
    seen[t] = true
    for k, v in next, t do
      if type(k) == "string" then
        if forbidden[k] then found[#found + 1] = path .. k end
        if type(v) == "table" then scan(v, path .. k .. ".", depth + 1) end
      end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" then scan(mt, path .. "<mt>.", depth + 1) end
  end
  scan(_G, "", 0)
  return table.concat(found, ",")
end
