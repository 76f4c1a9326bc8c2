/*
 * schema — the operator's host API schema (policy/host_api.json): parse it and
 * check host-call arguments against it. Runs in the worker (every effect call
 * of a script is checked here) and in tools (spk lint, types). The schema is
 * trusted operator configuration but still fully validated; the values it
 * checks come from scripts and are hostile.
 *
 * Format (version 1):
 *
 *   {"version": 1,
 *    "apis": {
 *      "<api>": {                          identifier [a-z_][a-z0-9_]*, not a built-in
 *        "class": "deterministic" | "nondeterministic" | "io",
 *        "description": "...",             optional
 *        "functions": {
 *          "<fn>": {                       identifier [A-Za-z_][A-Za-z0-9_]*
 *            "kind": "effect" | "query",
 *            "params": [ {"name": "<param>", "type": <type>, "optional": true?}, ... ],
 *            "variadic": <type>,           optional: any number of extra arguments
 *            "returns": <type>,            optional: for queries (checked, unused today)
 *            "description": "..."          optional
 *          } } } } }
 *
 *   <type> := "string" | "integer" | "number" | "boolean" | "table" | "any"
 *           | {"record": {"<field>": <type>, ...}}    a table with these string keys only;
 *                                                       a missing field is nil
 *           | {"list": <type>}                         a table 1..n, no other key
 *           | {"optional": <type>}                     nil or <type>
 *
 * Meaning of the types against a value (common/val.h): "string" a valid UTF-8
 * string; "integer" an integer, or a float with an integral value in range
 * (converted to an integer in place, as Lua's own integer arguments are);
 * "number" an integer or a float; "table" any table; "any" any non-nil value.
 * A parameter marked "optional": true is the same as {"optional": <type>}.
 * Trailing nil arguments count as absent.
 *
 * Classes: only "deterministic" APIs may be exposed to instance scripts,
 * because an instance must replay to the same effects. "nondeterministic"
 * (answers that differ between runs: wall clock, live matchmaking) and "io"
 * (reaches outside the game: files, network, databases) parse and document
 * what the game server offers other consumers, but the worker refuses a pack
 * whose manifest lists one with PERMISSION_DENIED ("api 'clock_wall' is
 * nondeterministic: instance scripts must replay"; worker/hostapi.h). Kinds:
 * an "effect" call is appended to the input's result in order; a "query"
 * suspends the script until the game server answers.
 *
 * "description" (API, function, parameter) must be a string when present; it
 * is kept for tools (spk types writes it into the annotation file).
 *
 * Reserved API names (refused here): the worker's built-in modules and the
 * sandbox's library names (state, ev, timer, rand, log, clock, drop, string,
 * table, math, utf8, coroutine, host, _G, _ENV).
 */
#ifndef MOONPEN_SCHEMA_H
#define MOONPEN_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "common/val.h"

typedef enum sch_kind {
	SCH_STRING,
	SCH_INTEGER,
	SCH_NUMBER,
	SCH_BOOLEAN,
	SCH_TABLE,
	SCH_ANY,
	SCH_RECORD,
	SCH_LIST,
	SCH_OPTIONAL,
} sch_kind;

typedef struct sch_type sch_type;

typedef struct sch_field {
	char *name;
	sch_type *type;
} sch_field;

struct sch_type {
	sch_kind kind;
	sch_type *elem;	   /* SCH_LIST, SCH_OPTIONAL */
	sch_field *fields; /* SCH_RECORD, sorted by name (bytewise) */
	size_t n_fields;
};

typedef struct sch_param {
	char *name;
	sch_type *type;	   /* {"optional": T} when the parameter is optional */
	char *description; /* NULL when absent */
} sch_param;

typedef enum sch_fn_kind { SCH_EFFECT, SCH_QUERY } sch_fn_kind;
typedef enum sch_class { SCH_DETERMINISTIC, SCH_NONDETERMINISTIC, SCH_IO } sch_class;

typedef struct sch_fn {
	char *name;
	sch_fn_kind kind;
	sch_param *params;
	size_t n_params;
	sch_type *variadic; /* NULL: no extra arguments */
	sch_type *returns;  /* NULL: none declared */
	char *description;  /* NULL when absent */
} sch_fn;

typedef struct sch_api {
	char *name;
	sch_class cls;
	sch_fn *fns; /* sorted by name */
	size_t n_fns;
	char *description; /* NULL when absent */
} sch_api;

typedef struct sch_schema {
	uint32_t version;
	sch_api *apis; /* sorted by name */
	size_t n_apis;
} sch_schema;

#define SCH_MAX_DEPTH 16  /* type nesting accepted in a schema */
#define SCH_MAX_PARAMS 32 /* parameters per function */
#define SCH_MAX_ARGS 64	  /* arguments per call, variadic included */

/* Parses json[0..len). Returns 0 and *out (free with sch_free), or -EINVAL with
 * the bad part named in err ("apis.ecs.functions.spawn.params[2].type: unknown
 * type \"strng\""), or -ENOMEM. An empty input (len 0) is an empty schema. */
int sch_parse(const char *json, size_t len, sch_schema **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sch_free(sch_schema *s);

/* Lookups by exact name; NULL when absent. */
const sch_api *sch_api_find(const sch_schema *s, const char *name);
const sch_fn *sch_fn_find(const sch_api *a, const char *name);

/* Checks a call api.fn(args[0..nargs)) (NULL entries and nil values are nil;
 * trailing nils count as absent). May convert integral floats to integers in
 * place where an "integer" is expected. Returns 0, or -EINVAL with a message
 * such as "ecs.spawn: argument #1 'kind' expected string, got number" or
 * "ecs.spawn: argument #2 'opts.pos.x' expected number, got nil" in err. */
int sch_check_args(const sch_api *a, const sch_fn *fn, val_t **args, size_t nargs, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Checks one value against a type; path names it in the error ("kind",
 * "opts.pos"). Same conventions as sch_check_args, without the prefix. */
int sch_check_value(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Static names: "string", ..., "record", "list", "optional"; "deterministic",
 * ...; and the Lua type name of a value ("nil", "boolean", "number", "string",
 * "table"). Never NULL. */
const char *sch_kind_name(sch_kind k);
/* Writes how a type reads in messages ("string", "list of integer", "record or
 * nil") into buf (always NUL-terminated when len > 0). Returns buf. */
char *sch_type_describe(const sch_type *t, char *buf, size_t len);
const char *sch_class_name(sch_class c);
const char *sch_val_type(const val_t *v);

#endif
