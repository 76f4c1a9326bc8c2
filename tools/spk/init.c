/*
 * init — spk init: creates a minimal pack folder that lint and run accept
 * (runs in spk; writes only inside the new folder, never over a file).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/spk/spk.h"

static const char manifest_fmt[] =
    "{\n"
    "  \"id\": \"%s\",\n"
    "  \"version\": \"0.1.0\",\n"
    "  \"engine\": \"lua\",\n"
    "  \"entry\": \"main.lua\",\n"
    "  \"description\": \"A new pack: a greeting counter and a heartbeat timer.\",\n"
    "  \"apis\": [\"ui\"]\n"
    "}\n";

static const char main_lua[] =
    "-- Durable data lives in `state` only; the timer names a global function and\n"
    "-- handlers are registered at the top level, so snapshots can restore both.\n"
    "\n"
    "function on_init(ctx)\n"
    "\tstate.set(\"greetings\", 0)\n"
    "\ttimer.every(1000, \"heartbeat\")\n"
    "end\n"
    "\n"
    "function heartbeat()\n"
    "\tlocal n = state.incr(\"beats\")\n"
    "\tui.broadcast(\"heartbeat \" .. n)\n"
    "end\n"
    "\n"
    "ev.on(\"Hello\", function(ctx)\n"
    "\tlocal n = state.incr(\"greetings\")\n"
    "\tui.broadcast(\"hello \" .. tostring(ctx.name) .. \" (#\" .. n .. \")\")\n"
    "end)\n"
    "\n"
    "function greetings()\n"
    "\treturn state.get(\"greetings\")\n"
    "end\n";

static const char events_jsonl[] = "{\"event\": \"Hello\", \"payload\": {\"name\": \"ada\"}}\n"
				   "{\"tick\": 20}\n"
				   "{\"call\": \"greetings\", \"args\": []}\n";

/* A pack id from the folder's last component: [a-z0-9][a-z0-9._-]{0,63}. */
static int id_ok(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') ||
		      (i > 0 && strchr("._-", id[i]))))
			return 0;
	return i > 0 && i <= 64;
}

/* Creates dir/name with data; refuses to replace an existing file. */
static int put(const char *dir, const char *name, const char *data)
{
	char path[PATH_MAX];
	size_t len = strlen(data);
	int fd, r = 0;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return spk_err(-ENAMETOOLONG, "init: %s/%s: path too long", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return spk_err(-errno, "init: %s: %s", path, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len)
		r = spk_err(-EIO, "init: %s: write failed", path);
	if (close(fd) != 0 && r == 0)
		r = spk_err(-EIO, "init: %s: close failed", path);
	return r;
}

int spk_cmd_init(int argc, char **argv)
{
	const char *dir = NULL, *id = NULL, *base;
	char manifest[sizeof manifest_fmt + 80];
	int i, k;

	for (i = 1; i < argc; i++) {
		if ((k = spk_opt(argc, argv, &i, "--id", &id)) < 0)
			return spk_err(SPK_USAGE, "init: --id needs a value");
		if (k == 0 && (argv[i][0] == '-' || dir))
			return spk_err(SPK_USAGE, "usage: spk init DIR [--id ID]");
		if (k == 0)
			dir = argv[i];
	}
	if (dir == NULL)
		return spk_err(SPK_USAGE, "usage: spk init DIR [--id ID]");
	base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (id == NULL)
		id = base;
	if (!id_ok(id))
		return spk_err(SPK_USAGE,
			       "init: \"%s\" is not a pack id ([a-z0-9][a-z0-9._-]{0,63}): "
			       "give one with --id",
			       id);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return spk_err(SPK_USAGE, "init: %s: %s", dir, strerror(errno));
	snprintf(manifest, sizeof manifest, manifest_fmt, id);
	if (put(dir, "manifest.json", manifest) < 0 || put(dir, "main.lua", main_lua) < 0 ||
	    put(dir, "events.jsonl", events_jsonl) < 0)
		return SPK_USAGE;
	printf("created pack %s in %s: try spk run %s --events %s/events.jsonl\n", id, dir, dir,
	       dir);
	return SPK_OK;
}
