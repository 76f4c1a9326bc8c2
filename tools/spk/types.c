/*
 * types — `spk types`: the Lua Language Server annotation file of the script
 * API (format and mapping in types.h).
 *
 * Runs in the spk tool. Trusts nothing in its inputs beyond what common/
 * validated: names are identifiers (Lua keywords are written so that the chunk
 * still compiles), descriptions become comment lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest.h"
#include "common/schema.h"
#include "tools/spk/types.h"
#include "worker/hostapi.h"

#define TY_BUF 2048 /* a class path or a type expression */

/* The built-in modules, hooks and error objects, as worker/mod_*.c and
 * docs/script-api.md define them. */
static const char builtins_text[] =
    "---An error raised by the host (a bad argument, a missing permission). tostring(e),\n"
    "---e.message and `..` give the message; error(e) rethrows it with its kind.\n"
    "---@class moonpen.error\n"
    "---@field kind string status name: \"invalid_argument\", \"permission_denied\", ...\n"
    "---@field message string\n"
    "\n"
    "---What on_init and on_close receive.\n"
    "---@class moonpen.ctx\n"
    "---@field instance_id string\n"
    "---@field pack_id string\n"
    "---@field pack_version string\n"
    "---@field seed integer\n"
    "---@field tick integer\n"
    "---@field labels table<string, string>\n"
    "\n"
    "---Runs once when the instance is created, after the entry chunk (not on restore).\n"
    "---@param ctx moonpen.ctx\n"
    "function on_init(ctx) end\n"
    "\n"
    "---Runs when the instance is closed.\n"
    "---@param ctx moonpen.ctx\n"
    "function on_close(ctx) end\n"
    "\n"
    "---The instance's durable key-value store (rolled back when an input fails).\n"
    "state = {}\n"
    "\n"
    "---@param key string 1 to 256 bytes\n"
    "---@return any value a deep copy, or nil\n"
    "function state.get(key) end\n"
    "\n"
    "---Stores plain data (nil deletes). Refused while the chunk loads.\n"
    "---@param key string\n"
    "---@param value any\n"
    "function state.set(key, value) end\n"
    "\n"
    "---Adds delta (default 1) to a number; an absent key counts as 0.\n"
    "---@param key string\n"
    "---@param delta? number\n"
    "---@return number\n"
    "function state.incr(key, delta) end\n"
    "\n"
    "---@return string[] keys sorted bytewise\n"
    "function state.keys() end\n"
    "\n"
    "---Events: handlers registered at the top level of the chunk, internal emits.\n"
    "ev = {}\n"
    "\n"
    "---Registers a handler (top level of the chunk only). Patterns: \"Name\", \"Prefix*\".\n"
    "---@param pattern string\n"
    "---@param fn fun(payload: table, name: string)\n"
    "function ev.on(pattern, fn) end\n"
    "\n"
    "---Queues an internal event, dispatched after the current one in the same input.\n"
    "---@param name string\n"
    "---@param payload? any plain data, deep-copied\n"
    "function ev.emit(name, payload) end\n"
    "\n"
    "---Timers in instance time; fn names a global function (snapshots restore it).\n"
    "timer = {}\n"
    "\n"
    "---Runs fn(...) once, ceil(ms / tick_ms) ticks from now (at least 1).\n"
    "---@param ms number\n"
    "---@param fn string|function a global function or its name\n"
    "---@param ... any plain data\n"
    "---@return integer id\n"
    "function timer.after(ms, fn, ...) end\n"
    "\n"
    "---Runs fn(...) every ms, first ceil(ms / tick_ms) ticks from now.\n"
    "---@param ms number\n"
    "---@param fn string|function a global function or its name\n"
    "---@param ... any plain data\n"
    "---@return integer id\n"
    "function timer.every(ms, fn, ...) end\n"
    "\n"
    "---@param id integer\n"
    "---@return boolean removed\n"
    "function timer.cancel(id) end\n"
    "\n"
    "---The id of a timer the manifest declares (\"timers\": [{\"id\": name, ...}]).\n"
    "---@param name string\n"
    "---@return integer id\n"
    "function timer.id(name) end\n"
    "\n"
    "---Instance time (no wall clock is reachable).\n"
    "clock = {}\n"
    "\n"
    "---@return integer ms tick * tick_ms\n"
    "function clock.now() end\n"
    "\n"
    "---@return integer tick\n"
    "function clock.tick() end\n"
    "\n"
    "---The instance RNG (seeded; rolled back when an input fails).\n"
    "rand = {}\n"
    "\n"
    "---@return number x in [0, 1)\n"
    "function rand.next() end\n"
    "\n"
    "---@param m integer\n"
    "---@param n integer\n"
    "---@return integer x in [m, n]\n"
    "function rand.int(m, n) end\n"
    "\n"
    "---@generic T\n"
    "---@param list T[] not empty\n"
    "---@return T\n"
    "function rand.pick(list) end\n"
    "\n"
    "---Log lines returned with the input's result.\n"
    "log = {}\n"
    "\n"
    "---@param ... any\n"
    "function log.debug(...) end\n"
    "\n"
    "---@param ... any\n"
    "function log.info(...) end\n"
    "\n"
    "---@param ... any\n"
    "function log.warn(...) end\n"
    "\n"
    "---@param ... any\n"
    "function log.error(...) end\n"
    "\n"
    "---The instance RNG, with Lua 5.4's semantics.\n"
    "---@overload fun(): number\n"
    "---@overload fun(m: integer): integer\n"
    "---@param m integer\n"
    "---@param n integer\n"
    "---@return integer\n"
    "function math.random(m, n) end\n"
    "\n"
    "---Reseeds the instance RNG (the argument is required: there is no clock).\n"
    "---@param n integer\n"
    "function math.randomseed(n) end\n";

/* ---- names ------------------------------------------------------------------------ */

static int is_keyword(const char *s)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else",	"elseif", "end",
					 "false", "for",   "function", "goto",	"if",	  "in",
					 "local", "nil",   "not",      "or",	"repeat", "return",
					 "then",  "true",  "until",    "while", NULL};

	for (const char *const *k = kw; *k != NULL; k++)
		if (strcmp(*k, s) == 0)
			return 1;
	return 0;
}

/* A parameter name usable in a Lua parameter list ("end" -> "end_"). */
static const char *param_ident(const char *name, char *buf, size_t len)
{
	if (!is_keyword(name))
		return name;
	snprintf(buf, len, "%s_", name);
	return buf;
}

/* ---- type expressions ------------------------------------------------------------- */

static const char *scalar_name(sch_kind k)
{
	return sch_kind_name(k); /* string integer number boolean table any */
}

/* buf = a b c, cut at len (deep nesting only shortens an annotation). */
static void cat3(char *buf, size_t len, const char *a, const char *b, const char *c)
{
	if (snprintf(buf, len, "%s%s%s", a, b, c) < 0 && len > 0)
		buf[0] = '\0';
}

/* The annotation of t; records are named by their path. */
static void type_expr(const sch_type *t, const char *path, char *buf, size_t len)
{
	char inner[TY_BUF];

	switch (t->kind) {
	case SCH_RECORD:
		snprintf(buf, len, "%s", path);
		break;
	case SCH_LIST:
		type_expr(t->elem, path, inner, sizeof(inner));
		if (strchr(inner, '|') != NULL)
			cat3(buf, len, "(", inner, ")[]");
		else
			cat3(buf, len, "", inner, "[]");
		break;
	case SCH_OPTIONAL:
		type_expr(t->elem, path, inner, sizeof(inner));
		cat3(buf, len, "", inner, "|nil");
		break;
	default:
		snprintf(buf, len, "%s", scalar_name(t->kind));
	}
}

/* "name?" and the type without |nil for an optional parameter or field. */
static void named_expr(const sch_type *t, const char *path, const char **opt, char *buf, size_t len)
{
	*opt = t->kind == SCH_OPTIONAL ? "?" : "";
	type_expr(t->kind == SCH_OPTIONAL ? t->elem : t, path, buf, len);
}

/* ---- writing ---------------------------------------------------------------------- */

/* "---<text>" lines: every line break starts a new comment line. */
static void comment(FILE *out, const char *text)
{
	const char *p = text;

	if (text == NULL)
		return;
	while (*p != '\0') {
		size_t n = strcspn(p, "\r\n");
		fprintf(out, "---%.*s\n", (int)n, p);
		p += n;
		p += strspn(p, "\r\n");
	}
}

/* Description after a ---@param / ---@field line, on one line. */
static void trailing(FILE *out, const char *text)
{
	for (const char *p = text; p != NULL && *p != '\0'; p++)
		fputc(*p == '\r' || *p == '\n' ? ' ' : *p, out);
	fputc('\n', out);
}

/* Writes a ---@class for every record inside t (nested first). */
static void classes(FILE *out, const sch_type *t, const char *path)
{
	char sub[TY_BUF], expr[TY_BUF];
	const char *opt;

	if (t->kind == SCH_LIST || t->kind == SCH_OPTIONAL) {
		classes(out, t->elem, path);
		return;
	}
	if (t->kind != SCH_RECORD)
		return;
	for (size_t i = 0; i < t->n_fields; i++) {
		snprintf(sub, sizeof(sub), "%s.%s", path, t->fields[i].name);
		classes(out, t->fields[i].type, sub);
	}
	fprintf(out, "---@class %s\n", path);
	for (size_t i = 0; i < t->n_fields; i++) {
		snprintf(sub, sizeof(sub), "%s.%s", path, t->fields[i].name);
		named_expr(t->fields[i].type, sub, &opt, expr, sizeof(expr));
		fprintf(out, "---@field %s%s %s\n", t->fields[i].name, opt, expr);
	}
	fputc('\n', out);
}

static void fn_classes(FILE *out, const sch_api *a, const sch_fn *f)
{
	char path[TY_BUF];

	for (size_t i = 0; i < f->n_params; i++) {
		snprintf(path, sizeof(path), "%s.%s.%s", a->name, f->name, f->params[i].name);
		classes(out, f->params[i].type, path);
	}
	snprintf(path, sizeof(path), "%s.%s.variadic", a->name, f->name);
	if (f->variadic != NULL)
		classes(out, f->variadic, path);
	snprintf(path, sizeof(path), "%s.%s.returns", a->name, f->name);
	if (f->returns != NULL)
		classes(out, f->returns, path);
}

static void fn_returns(FILE *out, const sch_api *a, const sch_fn *f)
{
	char path[TY_BUF], expr[TY_BUF] = "any";
	size_t n;

	if (f->kind != SCH_QUERY)
		return;
	snprintf(path, sizeof(path), "%s.%s.returns", a->name, f->name);
	if (f->returns != NULL)
		type_expr(f->returns, path, expr, sizeof(expr));
	n = strlen(expr);
	fprintf(out, "---@return %s%s value the answer, or nil when the query failed\n", expr,
		n >= 4 && strcmp(expr + n - 4, "|nil") == 0 ? "" : "|nil");
	fprintf(out, "---@return string? err why the query failed\n");
}

static void fn_write(FILE *out, const sch_api *a, const sch_fn *f)
{
	char path[TY_BUF], expr[TY_BUF], id[80];
	const char *opt;

	fn_classes(out, a, f);
	comment(out, f->description);
	if (f->kind == SCH_QUERY) {
		fprintf(out, "---Query: suspends the script until the game server answers.\n");
		fprintf(out, "---@async\n");
	}
	for (size_t i = 0; i < f->n_params; i++) {
		const sch_param *p = &f->params[i];
		snprintf(path, sizeof(path), "%s.%s.%s", a->name, f->name, p->name);
		named_expr(p->type, path, &opt, expr, sizeof(expr));
		fprintf(out, "---@param %s%s %s", param_ident(p->name, id, sizeof(id)), opt, expr);
		fputc(p->description != NULL ? ' ' : '\n', out);
		if (p->description != NULL)
			trailing(out, p->description);
	}
	if (f->variadic != NULL) {
		snprintf(path, sizeof(path), "%s.%s.variadic", a->name, f->name);
		type_expr(f->variadic, path, expr, sizeof(expr));
		fprintf(out, "---@param ... %s\n", expr);
	}
	fn_returns(out, a, f);
	if (is_keyword(f->name))
		fprintf(out, "%s[\"%s\"] = function(", a->name, f->name);
	else
		fprintf(out, "function %s.%s(", a->name, f->name);
	for (size_t i = 0; i < f->n_params; i++)
		fprintf(out, "%s%s", i ? ", " : "", param_ident(f->params[i].name, id, sizeof(id)));
	fprintf(out, "%s) end\n\n", f->variadic == NULL ? "" : f->n_params ? ", ..." : "...");
}

static void api_write(FILE *out, const sch_api *a)
{
	if (a->cls != SCH_DETERMINISTIC) {
		fprintf(out, "-- api '%s' is %s: not available to instance scripts\n\n", a->name,
			sch_class_name(a->cls));
		return;
	}
	comment(out, a->description);
	fprintf(out, "---@class %s\n%s = {}\n\n", a->name, a->name);
	for (size_t i = 0; i < a->n_fns; i++)
		fn_write(out, a, &a->fns[i]);
}

/* Every non-built-in API the manifest lists must be in the schema. */
static int check_manifest(const sch_schema *s, const mf_manifest *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_apis; i++) {
		if (hapi_is_builtin(m->apis[i]) || sch_api_find(s, m->apis[i]) != NULL)
			continue;
		snprintf(err, errlen,
			 "manifest lists api '%s', which the host API schema does not define",
			 m->apis[i]);
		return -EINVAL;
	}
	return 0;
}

static int parse_inputs(const char *sj, size_t sl, const char *mj, size_t ml, sch_schema **s,
			mf_manifest **m, char *err, size_t errlen)
{
	char why[512];
	int r = sch_parse(sj, sl, s, why, sizeof(why));

	if (r < 0) {
		snprintf(err, errlen, "host API schema: %s", why);
		return r;
	}
	if (mj == NULL)
		return 0;
	r = mf_parse(mj, ml, m, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "manifest: %s", why);
		return r;
	}
	return check_manifest(*s, *m, err, errlen);
}

int spk_types_write(const char *schema_json, size_t schema_len, const char *manifest_json,
		    size_t manifest_len, FILE *out, char *err, size_t errlen)
{
	sch_schema *s = NULL;
	mf_manifest *m = NULL;
	int r =
	    parse_inputs(schema_json, schema_len, manifest_json, manifest_len, &s, &m, err, errlen);

	if (r < 0)
		goto out;
	fprintf(out, "---@meta\n"
		     "-- The moonpen script API, written by `spk types` from the host API schema");
	fprintf(out, m != NULL ? " for pack '%s'.\n" : ".\n", m != NULL ? m->id : "");
	fprintf(out, "-- Do not edit: run `spk types` again when the schema or the manifest "
		     "changes.\n\n");
	fputs(builtins_text, out);
	fputc('\n', out);
	for (size_t i = 0; i < s->n_apis; i++)
		if (m == NULL || mf_uses_api(m, s->apis[i].name))
			api_write(out, &s->apis[i]);
	if (fflush(out) != 0 || ferror(out)) {
		snprintf(err, errlen, "writing the annotation file failed");
		r = -EIO;
	}
out:
	mf_free(m);
	sch_free(s);
	return r;
}
