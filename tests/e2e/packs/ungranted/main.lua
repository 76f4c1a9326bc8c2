-- Lists "music", which policy/grants.json grants only to dungeon packs:
-- moonpend refuses to create it (PERMISSION_DENIED).
ev.on("OnStart", function() music.play("theme") end)
