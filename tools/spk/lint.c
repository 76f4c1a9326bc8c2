/*
 * lint — spk lint: static checks of a pack folder (runs in spk, unconfined:
 * pack code is only compiled, in text mode, in a bare Lua state with no
 * library, and never run). Prints one "FILE:LINE: message" per finding.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "common/pack.h"
#include "common/schema.h"
#include "tools/spk/luascan.h"
#include "tools/spk/spk.h"

struct lint {
	const char *dir;
	const char *file; /* pack-relative path being checked */
	unsigned findings;
};

static void report(struct lint *l, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct lint *l, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;

	printf("%s/%s:%u: ", l->dir, file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	l->findings++;
}

static void on_scan(void *arg, unsigned line, const char *msg)
{
	struct lint *l = arg;

	report(l, l->file, line, "%s", msg);
}

/* The line of the first occurrence of "needle" (quoted) in the manifest, or 1. */
static unsigned line_of(const pack *pk, const char *needle)
{
	char q[160];
	const char *hit, *p;
	unsigned line = 1;

	snprintf(q, sizeof q, "\"%s\"", needle);
	hit = strstr(pk->manifest_json, q);
	for (p = pk->manifest_json; hit && p < hit; p++)
		line += *p == '\n';
	return line;
}

/* Compiles src (text only) in L; a failure is a finding "file:line: msg". */
static void compile(struct lint *l, lua_State *L, const char *file, const char *src, size_t len,
		    unsigned line)
{
	char name[300];
	const char *msg, *colon;
	unsigned at = line;

	snprintf(name, sizeof name, "=%s", file);
	if (luaL_loadbufferx(L, src, len, name, "t") == LUA_OK) {
		lua_pop(L, 1);
		return;
	}
	/* Lua says "file:LINE: message": keep the message, take the line */
	msg = lua_tostring(L, -1);
	msg = msg ? msg : "does not compile";
	colon = strncmp(msg, file, strlen(file)) == 0 ? msg + strlen(file) : NULL;
	if (colon && *colon == ':') {
		at = line - 1 + (unsigned)strtoul(colon + 1, NULL, 10);
		msg = strchr(colon + 1, ':') ? strchr(colon + 1, ':') + 1 : msg;
		msg += *msg == ' ';
	}
	report(l, file, at, "syntax: %s", msg);
	lua_pop(L, 1);
}

static int is_name(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (i > 0 && s[i] >= '0' && s[i] <= '9')))
			return 0;
	return i > 0;
}

/* Triggers compile as the worker compiles them (engine.c). */
static int lint_triggers(struct lint *l, lua_State *L, const pack *pk)
{
	size_t i;

	for (i = 0; i < pk->mf->n_triggers; i++) {
		const mf_trigger *t = &pk->mf->triggers[i];
		unsigned line = line_of(pk, t->id);
		char *code =
		    malloc(strlen(t->action) + (t->condition ? strlen(t->condition) : 0) + 64);
		if (code == NULL)
			return -ENOMEM;
		if (t->condition) {
			sprintf(code, "local ctx, event = ...; return (%s\n)", t->condition);
			compile(l, L, "manifest.json", code, strlen(code), line);
		}
		if (!is_name(t->action)) {
			sprintf(code, "local ctx, event = ...; %s\n", t->action);
			compile(l, L, "manifest.json", code, strlen(code), line);
		}
		free(code);
	}
	return 0;
}

static int builtin(const char *api)
{
	static const char *const b[] = {"state", "ev", "timer", "rand", "log", "clock", "drop"};
	size_t i;

	for (i = 0; i < sizeof b / sizeof b[0]; i++)
		if (strcmp(api, b[i]) == 0)
			return 1;
	return 0;
}

static void lint_apis(struct lint *l, const pack *pk, const sch_schema *sch)
{
	size_t i;

	for (i = 0; i < pk->mf->n_apis; i++) {
		const char *api = pk->mf->apis[i];
		const sch_api *a = builtin(api) ? NULL : sch_api_find(sch, api);
		if (builtin(api))
			continue;
		if (a == NULL)
			report(l, "manifest.json", line_of(pk, api),
			       "apis: \"%s\" is not in the host API schema", api);
		else if (a->cls != SCH_DETERMINISTIC)
			report(l, "manifest.json", line_of(pk, api),
			       "apis: \"%s\" is %s: only deterministic APIs can be replayed", api,
			       sch_class_name(a->cls));
	}
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

static int lint_sources(struct lint *l, lua_State *L, const pack *pk)
{
	size_t i;
	int r;

	for (i = 0; i < pk->n_files; i++) {
		const Moonpen__Worker__V1__PackFile *f = pk->files[i];
		unsigned before = l->findings;
		if (!has_suffix(f->path, ".lua"))
			continue;
		compile(l, L, f->path, (const char *)f->data.data, f->data.len, 1);
		/* offline tests and migrations do not run in a live instance */
		if (l->findings != before || strncmp(f->path, "tests/", 6) == 0 ||
		    strncmp(f->path, "migrations/", 11) == 0)
			continue;
		l->file = f->path;
		r = lscan_check((const char *)f->data.data, f->data.len, on_scan, l);
		if (r < 0)
			return r;
	}
	return 0;
}

int spk_cmd_lint(int argc, char **argv)
{
	const char *dir = NULL, *host_api = NULL;
	char err[1024], probe[4200], *schema = NULL;
	struct lint l = {0};
	size_t schema_len = 0;
	sch_schema *sch = NULL;
	lua_State *L = NULL;
	pack *pk = NULL;
	int i, k, code = SPK_USAGE;

	for (i = 1; i < argc; i++) {
		if ((k = spk_opt(argc, argv, &i, "--host-api", &host_api)) < 0)
			return spk_err(SPK_USAGE, "lint: --host-api needs a value");
		if (k == 0 && (argv[i][0] == '-' || dir))
			return spk_err(SPK_USAGE, "usage: spk lint PACK_DIR [--host-api SCHEMA]");
		if (k == 0)
			dir = argv[i];
	}
	if (dir == NULL)
		return spk_err(SPK_USAGE, "usage: spk lint PACK_DIR [--host-api SCHEMA]");
	l.dir = dir;
	snprintf(probe, sizeof probe, "%s/manifest.json", dir);
	if (access(probe, R_OK) != 0) {
		snprintf(err, sizeof err, "%s: not a pack folder (no readable manifest.json)", dir);
		goto out;
	}
	if (spk_host_api(host_api, &schema, &schema_len, err, sizeof err) < 0 ||
	    sch_parse(schema, schema_len, &sch, err, sizeof err) < 0)
		goto out;
	if (pack_load_dir(dir, &pk, err, sizeof err) < 0) {
		/* a manifest or layout the supervisor would refuse: a finding */
		printf("%s/manifest.json:1: %s\n", dir, err);
		code = SPK_FAIL;
		goto out;
	}
	L = luaL_newstate(); /* no library opened: compile only */
	if (L == NULL || lint_sources(&l, L, pk) < 0 || lint_triggers(&l, L, pk) < 0) {
		snprintf(err, sizeof err, "out of memory");
		goto out;
	}
	lint_apis(&l, pk, sch);
	code = l.findings ? SPK_FAIL : SPK_OK;
	fprintf(stderr, "spk lint: %s: %u finding%s\n", dir, l.findings,
		l.findings == 1 ? "" : "s");
out:
	if (code == SPK_USAGE)
		spk_err(code, "lint: %s", err);
	if (L)
		lua_close(L);
	sch_free(sch);
	free(schema);
	pack_free(pk);
	return code;
}
