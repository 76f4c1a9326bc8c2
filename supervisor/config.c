/*
 * config — defaults, configuration file and flags of moonpend (runs in the
 * supervisor before it serves anything; operator input, still validated).
 */
#include "supervisor/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "policy/limits.h"

enum opt_kind { OPT_STR, OPT_U32, OPT_U64, OPT_LEVEL };

struct opt {
	const char *name; /* flag name without "--"; the file key is the same with '_' */
	enum opt_kind kind;
	size_t off, size;
	uint64_t min, max;
	const char *help;
};

#define O_STR(n, f, h)                                                                             \
	{                                                                                          \
		n, OPT_STR, offsetof(sup_config, f), sizeof(((sup_config *)0)->f), 0, 0, h         \
	}
#define O_U32(n, f, lo, hi, h)                                                                     \
	{                                                                                          \
		n, OPT_U32, offsetof(sup_config, f), 4, lo, hi, h                                  \
	}
#define O_U64(n, f, lo, hi, h)                                                                     \
	{                                                                                          \
		n, OPT_U64, offsetof(sup_config, f), 8, lo, hi, h                                  \
	}

static const struct opt opts[] = {
    O_STR("listen", listen, "API URL (default ipc://RUN_DIR/api.sock)"),
    O_STR("packs", packs, "packs folder, one sub-folder per pack"),
    O_STR("run-dir", run_dir, "runtime folder for sockets (created 0700)"),
    O_STR("state-dir", state_dir, "durable state folder"),
    O_STR("worker", worker, "moonpen-worker executable"),
    O_STR("host-api", host_api, "host API schema (JSON)"),
    O_STR("grants", grants, "API grants per pack (JSON, policy/grants.json)"),
    O_STR("require-layers", require_layers,
	  "comma-separated confinement layers a worker must have, or it is refused"),
    O_STR("worker-wrapper", worker_wrapper,
	  "DEBUG: command run before each worker (valgrind); disables its seccomp"),
    O_U32("api-contexts", api_contexts, 1, 4096, "requests served at once"),
    O_U64("memory-bytes", mem_bytes, 1 << 20, 1ULL << 34, "default Lua heap cap"),
    O_U32("deadline-ms", deadline_ms, 1, 600000, "default soft deadline per input"),
    O_U32("hard-factor", hard_factor, 2, 1000, "hard deadline = soft x this"),
    O_U32("spawn-timeout-ms", spawn_timeout_ms, 100, 600000, "worker start timeout"),
    O_U32("restart-max", restart_max, 0, 1000, "worker restarts allowed per window"),
    O_U32("restart-window-ms", restart_window_ms, 1000, 86400000,
	  "window of the restart intensity"),
    O_U32("max-request-bytes", max_request_bytes, 1024, MP_TRANSPORT_MAX_BYTES,
	  "largest request answered"),
    O_U32("snapshot-every", snapshot_every, 1, 1000000, "logged inputs between snapshots"),
    O_U32("keep-snapshots", keep_snapshots, 1, 1000, "snapshots kept per instance (rollback)"),
    O_U32("spare-workers", spare_workers, 0, 64, "warm confined workers waiting for an Init"),
    O_U32("pool-size", pool_size, 1, 1024, "instances per pool worker"),
    O_U32("query-timeout-ms", query_timeout_ms, 10, 3600000,
	  "unanswered script query fails its input after this"),
    O_U32("group-commit-ms", group_commit_ms, 0, 1000,
	  "longest wait of an acknowledgement for a grouped commit"),
    O_STR("durability", durability, "memory | process | power (fsync)"),
    {"log-level", OPT_LEVEL, offsetof(sup_config, log_level), sizeof(int), 0, 0,
     "debug | info | warn | error"},
};

static void exe_sibling(char *out, size_t len, const char *const *cands)
{
	char self[PATH_MAX], path[PATH_MAX * 2];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;

	out[0] = '\0';
	if (n <= 0)
		return;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	for (; *cands; cands++) {
		snprintf(path, sizeof path, "%s/%s", self, *cands);
		if (access(path, R_OK) == 0) {
			if (realpath(path, out) == NULL && strlen(path) < len)
				memcpy(out, path, strlen(path) + 1);
			return;
		}
	}
}

static void defaults(sup_config *c)
{
	static const char *const workers[] = {"moonpen-worker", "../libexec/moonpen/moonpen-worker",
					      NULL};
	static const char *const schemas[] = {"../../policy/host_api.json",
					      "../share/moonpen/policy/host_api.json", NULL};
	static const char *const grants[] = {"../../policy/grants.json",
					     "../share/moonpen/policy/grants.json", NULL};

	memset(c, 0, sizeof *c);
	snprintf(c->packs, sizeof c->packs, "/var/lib/moonpen/packs");
	snprintf(c->run_dir, sizeof c->run_dir, "/run/moonpen");
	snprintf(c->state_dir, sizeof c->state_dir, "/var/lib/moonpen");
	exe_sibling(c->worker, sizeof c->worker, workers);
	exe_sibling(c->host_api, sizeof c->host_api, schemas);
	exe_sibling(c->grants, sizeof c->grants, grants);
	c->api_contexts = MP_API_CONTEXTS;
	c->mem_bytes = MP_LUA_MEM_BYTES;
	c->deadline_ms = MP_SOFT_DEADLINE_MS;
	c->hard_factor = MP_HARD_DEADLINE_FACTOR;
	c->spawn_timeout_ms = MP_SPAWN_TIMEOUT_MS;
	c->restart_max = MP_RESTART_MAX;
	c->restart_window_ms = MP_RESTART_WINDOW_MS;
	c->max_request_bytes = MP_MAX_REQUEST_BYTES;
	c->snapshot_every = MP_SNAPSHOT_EVERY;
	c->keep_snapshots = MP_KEEP_SNAPSHOTS;
	c->spare_workers = MP_SPARE_WORKERS;
	c->pool_size = MP_POOL_SIZE;
	c->query_timeout_ms = MP_QUERY_TIMEOUT_MS;
	c->group_commit_ms = MP_GROUP_COMMIT_MS;
	snprintf(c->durability, sizeof c->durability, "process");
	c->log_level = LOG_INFO;
}

static const struct opt *find_opt(const char *name, size_t len)
{
	size_t i, j;

	for (i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		const char *o = opts[i].name;
		for (j = 0; j < len && o[j]; j++)
			if (o[j] != name[j] && !(o[j] == '-' && name[j] == '_'))
				break;
		if (j == len && o[j] == '\0')
			return &opts[i];
	}
	return NULL;
}

static int set_opt(sup_config *c, const struct opt *o, const char *v, char *err,
		   unsigned long errlen)
{
	char *p = (char *)c + o->off, *end;
	unsigned long long n;
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	int i;

	switch (o->kind) {
	case OPT_STR:
		if (strlen(v) >= o->size || v[0] == '\0') {
			snprintf(err, errlen, "%s: value empty or too long", o->name);
			return -EINVAL;
		}
		memcpy(p, v, strlen(v) + 1);
		return 0;
	case OPT_LEVEL:
		for (i = 0; i < 4; i++)
			if (strcmp(v, levels[i]) == 0) {
				*(int *)(void *)p = i;
				return 0;
			}
		snprintf(err, errlen, "%s: expected debug, info, warn or error", o->name);
		return -EINVAL;
	default:
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || end == v || *end || v[0] == '-' || n < o->min || n > o->max) {
			snprintf(err, errlen, "%s: expected an integer in [%llu, %llu], got '%s'",
				 o->name, (unsigned long long)o->min, (unsigned long long)o->max,
				 v);
			return -EINVAL;
		}
		if (o->kind == OPT_U32)
			*(uint32_t *)(void *)p = (uint32_t)n;
		else
			*(uint64_t *)(void *)p = n;
		return 0;
	}
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int load_file(sup_config *c, const char *path, char *err, unsigned long errlen)
{
	char line[4096], msg[256];
	FILE *f = fopen(path, "re");
	int lineno = 0, r = 0;

	if (f == NULL) {
		snprintf(err, errlen, "config %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	while (r == 0 && fgets(line, sizeof line, f)) {
		char *s = trim(line), *eq, *key, *val;
		const struct opt *o;
		lineno++;
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "config %s:%d: expected key = value", path, lineno);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		o = find_opt(key, strlen(key));
		if (o == NULL) {
			snprintf(err, errlen, "config %s:%d: unknown key '%s'", path, lineno, key);
			r = -EINVAL;
		} else if ((r = set_opt(c, o, val, msg, sizeof msg)) < 0) {
			snprintf(err, errlen, "config %s:%d: %s", path, lineno, msg);
		}
	}
	fclose(f);
	return r;
}

void sup_config_usage(void *fp)
{
	FILE *f = fp;
	size_t i;

	fprintf(f, "usage: moonpend [--config FILE] [--OPTION VALUE]...\n");
	for (i = 0; i < sizeof opts / sizeof opts[0]; i++)
		fprintf(f, "  --%-18s %s\n", opts[i].name, opts[i].help);
	fprintf(f, "  --%-18s %s\n", "config", "configuration file (key = value lines)");
}

int sup_config_load(sup_config *c, int argc, char **argv, char *err, unsigned long errlen)
{
	int i, r;

	defaults(c);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--config needs a value");
				return -EINVAL;
			}
			r = load_file(c, argv[++i], err, errlen);
			if (r < 0)
				return r;
		}
	}
	for (i = 1; i < argc; i++) {
		const struct opt *o;
		if (strcmp(argv[i], "--config") == 0) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--", 2) != 0 ||
		    (o = find_opt(argv[i] + 2, strlen(argv[i] + 2))) == NULL) {
			snprintf(err, errlen, "unknown argument '%s' (see --help)", argv[i]);
			return -EINVAL;
		}
		if (i + 1 >= argc) {
			snprintf(err, errlen, "--%s needs a value", o->name);
			return -EINVAL;
		}
		r = set_opt(c, o, argv[++i], err, errlen);
		if (r < 0)
			return r;
	}
	if (c->listen[0] == '\0' &&
	    (size_t)snprintf(c->listen, sizeof c->listen, "ipc://%.*s/api.sock",
			     (int)(sizeof c->listen - 20), c->run_dir) >= sizeof c->listen) {
		snprintf(err, errlen, "run-dir too long for an ipc URL");
		return -EINVAL;
	}
	if (strcmp(c->durability, "memory") != 0 && strcmp(c->durability, "process") != 0 &&
	    strcmp(c->durability, "power") != 0) {
		snprintf(err, errlen, "--durability must be memory, process or power, not '%s'",
			 c->durability);
		return -EINVAL;
	}
	if (c->grants[0] == '\0') {
		snprintf(err, errlen, "cannot find grants.json: set --grants");
		return -EINVAL;
	}
	if (c->worker[0] == '\0' || c->host_api[0] == '\0') {
		snprintf(err, errlen, "cannot find %s: set --%s",
			 c->worker[0] ? "host_api.json" : "moonpen-worker",
			 c->worker[0] ? "host-api" : "worker");
		return -EINVAL;
	}
	return 0;
}
