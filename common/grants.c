/*
 * grants — parse the operator's API grants and check manifests against them.
 *
 * Runs in the supervisor and in tools. The grants file is operator
 * configuration (trusted, still validated field by field, as common/schema.c
 * does); the manifests checked against it come from pack authors and were
 * validated by common/manifest.c. The format is described in grants.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/jsonx.h"
#include "common/grants.h"

/* Must match worker/hostapi.c's built-in modules: these need no grant. */
static const char *const builtins[] = {"state", "ev", "timer", "rand", "log", "clock", NULL};

typedef struct grant {
	char **packs;
	size_t n_packs;
	char **apis;
	size_t n_apis;
} grant;

struct grants {
	grant *g;
	size_t n;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void grants_free(grants *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++) {
		strv_free(g->g[i].packs, g->g[i].n_packs);
		strv_free(g->g[i].apis, g->g[i].n_apis);
	}
	free(g->g);
	free(g);
}

/* ---- lexical checks -------------------------------------------------------------- */

static int is_pattern(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("._-*?", s[i]) != NULL))
			return 0;
	return 1;
}

static int is_api_name(const char *s)
{
	size_t n = strlen(s);

	if (strcmp(s, "*") == 0)
		return 1;
	if (n < 1 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* '*' any run, '?' one character; iterative, with one backtrack point (the
 * last '*'), so it runs in O(len(pattern) * len(id)) at worst. */
int grants_match(const char *p, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s != '\0') {
		if (*p == '*') {
			star = p++;
			resume = s;
		} else if (*p == '?' || *p == *s) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/* ---- parsing ---------------------------------------------------------------------- */

/* Parses grants[gi].<field>: a non-empty array of distinct valid strings.
 * what[0] names one item ("a pack id pattern"), what[1] several. */
static int parse_list(json_t *a, size_t gi, const char *field, int (*valid)(const char *),
		      const char *const what[2], char ***out, size_t *n, char *err, size_t errlen)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > GRANTS_MAX_ITEMS)
		return diag_fail(err, errlen, "grants[%zu].%s: expected an array of 1 to %d %s", gi,
				 field, GRANTS_MAX_ITEMS, what[1]);
	*out = calloc(json_array_size(a) + 1, sizeof(**out));
	if (*out == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;

		if (s == NULL || strlen(s) != json_string_length(v) || !valid(s))
			return diag_fail(err, errlen, "grants[%zu].%s[%zu]: expected %s", gi, field,
					 i + 1, what[0]);
		for (size_t k = 0; k < i; k++)
			if (strcmp((*out)[k], s) == 0)
				return diag_fail(err, errlen,
						 "grants[%zu].%s[%zu]: '%s' is listed twice", gi,
						 field, i + 1, s);
		(*out)[i] = strdup(s);
		if ((*out)[i] == NULL)
			return -ENOMEM;
		*n = i + 1;
	}
	return 0;
}

static int parse_grant(json_t *j, size_t gi, grant *g, char *err, size_t errlen)
{
	static const char *const keys[] = {"packs", "apis", "description", NULL};
	static const char *const pats[2] = {"a pack id pattern ([a-z0-9._-*?], 1 to 64 bytes)",
					    "pack id patterns"};
	static const char *const apis[2] = {"an API name or \"*\"", "API names"};
	json_t *d = json_object_get(j, "description");
	char path[32];
	int r;

	snprintf(path, sizeof(path), "grants[%zu]", gi);
	if (!json_is_object(j))
		return diag_fail(err, errlen, "%s: expected an object {packs, apis}", path);
	r = jsonx_check_keys(j, keys, path, err, errlen);
	if (r == 0 && d != NULL && !json_is_string(d))
		r = diag_fail(err, errlen, "%s.description: expected a string", path);
	if (r == 0)
		r = parse_list(json_object_get(j, "packs"), gi, "packs", is_pattern, pats,
			       &g->packs, &g->n_packs, err, errlen);
	if (r == 0)
		r = parse_list(json_object_get(j, "apis"), gi, "apis", is_api_name, apis, &g->apis,
			       &g->n_apis, err, errlen);
	return r;
}

static int parse_root(json_t *root, grants *g, char *err, size_t errlen)
{
	static const char *const keys[] = {"version", "grants", "description", NULL};
	json_t *list = json_object_get(root, "grants"), *v;
	size_t i;
	int r;

	if (!json_is_object(root))
		return diag_fail(err, errlen, "grants: expected a JSON object");
	r = jsonx_check_keys(root, keys, "grants file", err, errlen);
	if (r < 0)
		return r;
	r = jsonx_check_v1(root, err, errlen);
	if (r < 0)
		return r;
	if (!json_is_array(list) || json_array_size(list) > GRANTS_MAX)
		return diag_fail(err, errlen, "grants: expected an array of at most %d grants",
				 GRANTS_MAX);
	g->g = calloc(json_array_size(list) + 1, sizeof(*g->g));
	if (g->g == NULL)
		return -ENOMEM;
	json_array_foreach(list, i, v)
	{
		g->n = i + 1;
		r = parse_grant(v, i + 1, &g->g[i], err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int grants_parse(const char *json, size_t len, grants **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL;
	grants *g;
	int r;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (len > GRANTS_MAX_BYTES)
		return diag_fail(err, errlen, "grants file is larger than %d bytes",
				 GRANTS_MAX_BYTES);
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		diag_fail(err, errlen, "out of memory");
		return -ENOMEM;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL &&
	    (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')) {
		r = -ENOMEM; /* not the operator's fault: never "not valid JSON" */
		goto out;
	}
	if (root == NULL) {
		r = diag_fail(err, errlen, "grants file is not valid JSON: %s (line %d, column %d)",
			      jerr.text, jerr.line, jerr.column);
		goto out;
	}
	r = parse_root(root, g, err, errlen);
out:
	if (r == -ENOMEM)
		diag_fail(err, errlen, "out of memory");
	json_decref(root);
	if (r < 0)
		grants_free(g);
	else
		*out = g;
	return r;
}

/* ---- checking ----------------------------------------------------------------------- */

static int is_builtin(const char *api)
{
	for (const char *const *b = builtins; *b != NULL; b++)
		if (strcmp(*b, api) == 0)
			return 1;
	return 0;
}

static int strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static int granted(const grants *g, const char *id, const char *api)
{
	for (size_t i = 0; g != NULL && i < g->n; i++) {
		const grant *gr = &g->g[i];
		int pack_ok = 0;

		for (size_t k = 0; !pack_ok && k < gr->n_packs; k++)
			pack_ok = grants_match(gr->packs[k], id);
		if (pack_ok &&
		    (strv_has(gr->apis, gr->n_apis, api) || strv_has(gr->apis, gr->n_apis, "*")))
			return 1;
	}
	return 0;
}

int grants_check(const grants *g, const mf_manifest *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_apis; i++) {
		if (is_builtin(m->apis[i]) || granted(g, m->id, m->apis[i]))
			continue;
		snprintf(err, errlen, "pack '%s' is not granted api '%s' (policy/grants.json)",
			 m->id, m->apis[i]);
		return -EPERM;
	}
	return 0;
}
