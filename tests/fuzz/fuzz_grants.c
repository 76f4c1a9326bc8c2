/*
 * fuzz_grants — libFuzzer harness for grants_parse and grants_check (runs in
 * the fuzzer only). Input: policy/grants.json text; the file is operator
 * configuration, but it is validated field by field, and the manifests it is
 * checked against come from pack authors. Asserts the contract:
 *   - grants_parse: 0 with a grant set, or -EINVAL / -ENOMEM with a
 *     NUL-terminated message and no grant set;
 *   - grants_check of every fixed manifest below: 0 or -EPERM with a message
 *     naming the pack; 0 always for a manifest that lists only built-in
 *     modules, and -EPERM always with no grants (NULL) for one that does not.
 * An input holding a NUL byte is never JSON that jansson accepts; it is used
 * instead as "pattern\0id" and grants_match is compared with a reference
 * glob matcher (dynamic programming over '*' and '?').
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/grants.h"
#include "common/manifest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Pack ids that the seed grants match, miss, or match only through '?' / '*'. */
static const char *const manifests[] = {
    "{\"id\":\"dungeon-forest\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"m.lua\","
    "\"apis\":[\"ui\",\"ecs\",\"state\",\"music\",\"quest\",\"timer\"]}",
    "{\"id\":\"key-collection\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"m.lua\","
    "\"apis\":[\"ui\"]}",
    "{\"id\":\"a.b-c_9\",\"version\":\"0.0.1\",\"engine\":\"lua\",\"entry\":\"m.lua\","
    "\"apis\":[\"bank\",\"ui\",\"_x\"]}",
    "{\"id\":\"query\",\"version\":\"2.0.0\",\"engine\":\"lua\",\"entry\":\"m.lua\","
    "\"apis\":[\"bank\"]}",
};
#define N_MF (sizeof manifests / sizeof manifests[0])
/* Only built-in modules, and no apis at all: always granted. */
static const char builtin_only[] =
    "{\"id\":\"plain\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"m.lua\","
    "\"apis\":[\"state\",\"ev\",\"timer\",\"rand\",\"log\",\"clock\"]}";
static const char no_apis[] =
    "{\"id\":\"none\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"m.lua\"}";

static mf_manifest *mf[N_MF], *mf_builtin, *mf_none;

static mf_manifest *must_parse(const char *json)
{
	mf_manifest *m = NULL;
	char err[256];

	if (mf_parse(json, strlen(json), &m, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_grants: fixed manifest: %s\n", err);
		abort();
	}
	return m;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	size_t i;

	(void)argc;
	(void)argv;
	for (i = 0; i < N_MF; i++) {
		mf[i] = must_parse(manifests[i]);
		/* no grant file grants nothing (but built-in modules) */
		if (grants_check(NULL, mf[i], err, sizeof err) != -EPERM)
			abort();
	}
	mf_builtin = must_parse(builtin_only);
	mf_none = must_parse(no_apis);
	return 0;
}

/* Reference matcher: m[j] says whether p[0..i) matches s[0..j). */
static int ref_match(const char *p, size_t np, const char *s, size_t ns)
{
	unsigned char row[65], prev[65];
	size_t i, j;

	memset(prev, 0, sizeof prev);
	prev[0] = 1;
	for (i = 1; i <= np; i++) {
		row[0] = prev[0] && p[i - 1] == '*';
		for (j = 1; j <= ns; j++) {
			if (p[i - 1] == '*')
				row[j] = prev[j] || row[j - 1];
			else
				row[j] = prev[j - 1] && (p[i - 1] == '?' || p[i - 1] == s[j - 1]);
		}
		memcpy(prev, row, ns + 1);
	}
	return prev[ns];
}

/* "pattern\0id", each cut to 64 bytes (the bounds of the file and of a pack id). */
static void match_mode(const uint8_t *data, size_t size, const uint8_t *nul)
{
	char p[65], s[65];
	size_t np = (size_t)(nul - data), ns = size - np - 1;

	np = np > 64 ? 64 : np;
	ns = ns > 64 ? 64 : ns;
	memcpy(p, data, np);
	memcpy(s, nul + 1, ns);
	p[np] = '\0';
	s[ns] = '\0';
	np = strlen(p);
	ns = strlen(s);
	if (!grants_match(p, s) != !ref_match(p, np, s, ns))
		abort();
	/* "*" matches every id; any text matches itself ('*' and '?' match themselves) */
	if (!grants_match("*", s) || !grants_match(s, s))
		abort();
}

static void check_one(const grants *g, const mf_manifest *m)
{
	char err[256];
	int r;

	memset(err, 'x', sizeof err);
	r = grants_check(g, m, err, sizeof err);
	if (r == 0)
		return;
	if (r != -EPERM || memchr(err, '\0', sizeof err) == NULL || strstr(err, m->id) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	grants *g = NULL;
	char err[256];
	size_t i;
	int r;

	if (nul != NULL) {
		match_mode(data, size, nul);
		return 0;
	}
	memset(err, 'x', sizeof err);
	r = grants_parse((const char *)data, size, &g, err, sizeof err);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || g != NULL ||
		    memchr(err, '\0', sizeof err) == NULL)
			abort();
		return 0;
	}
	if (g == NULL)
		abort();
	for (i = 0; i < N_MF; i++)
		check_one(g, mf[i]);
	if (grants_check(g, mf_builtin, err, sizeof err) != 0 ||
	    grants_check(g, mf_none, err, sizeof err) != 0)
		abort();
	grants_free(g);
	return 0;
}
