/*
 * test_grants — policy/grants.json parses and grants every pack the repository
 * ships (examples, e2e, adversarial, bench); patterns match exactly as
 * documented; refusals and malformed files produce their exact messages. Run
 * from the repository root.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/grants.h"
#include "common/manifest.h"
#include "tests/support/files.h"

static grants *parse_ok(const char *json)
{
	grants *g = NULL;
	char err[256] = "";

	cr_assert_eq(grants_parse(json, strlen(json), &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(g);
	return g;
}

static grants *shipped(void)
{
	size_t len;
	char *json = tf_slurp("policy/grants.json", &len);
	grants *g = NULL;
	char err[256] = "";

	cr_assert_not_null(json);
	cr_assert_eq(grants_parse(json, len, &g, err, sizeof(err)), 0, "%s", err);
	free(json);
	return g;
}

static mf_manifest *manifest(const char *id, const char *apis)
{
	char json[512], err[256];
	mf_manifest *m = NULL;

	snprintf(json, sizeof(json),
		 "{\"id\":\"%s\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
		 "\"apis\":[%s]}",
		 id, apis);
	cr_assert_eq(mf_parse(json, strlen(json), &m, err, sizeof(err)), 0, "%s", err);
	return m;
}

/* Packs the shipped grants must not accept: spk-lint lists an API no schema
 * defines on purpose (a lint finding); ungranted asks for an API its grant
 * lacks (tests/e2e/test_grants.c expects PERMISSION_DENIED). */
static int skipped(const char *name)
{
	return strcmp(name, "spk-lint") == 0 || strcmp(name, "ungranted") == 0;
}

/* Checks every pack folder under dir against g; returns how many were checked. */
static int check_dir(const grants *g, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d)) != NULL) {
		char path[512], err[256] = "";
		mf_manifest *m = NULL;
		size_t len;
		char *json;

		if (de->d_name[0] == '.' || skipped(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/manifest.json", dir, de->d_name);
		if (access(path, R_OK) != 0)
			continue; /* not a pack folder (e.g. a schema file) */
		json = tf_slurp(path, &len);
		cr_assert_eq(mf_parse(json, len, &m, err, sizeof(err)), 0, "%s: %s", path, err);
		cr_assert_eq(grants_check(g, m, err, sizeof(err)), 0, "%s: %s", path, err);
		mf_free(m);
		free(json);
		n++;
	}
	closedir(d);
	return n;
}

/* Every pack folder the repository ships (new ones included) is granted. */
Test(grants, shipped_policy_grants_every_shipped_pack)
{
	grants *g = shipped();

	cr_assert_eq(check_dir(g, "examples/packs"), 2);
	cr_assert_geq(check_dir(g, "tests/e2e/packs"), 5);
	cr_assert_eq(check_dir(g, "tests/adversarial/packs"), 5);
	cr_assert_geq(check_dir(g, "tests/bench/packs"), 1);
	grants_free(g);
}

Test(grants, shipped_policy_refuses_what_it_does_not_list)
{
	grants *g = shipped();
	mf_manifest *m = manifest("arena-1", "\"ui\",\"state\",\"music\"");
	char err[256] = "";

	cr_assert_eq(grants_check(g, m, err, sizeof(err)), -EPERM);
	cr_assert_str_eq(err, "pack 'arena-1' is not granted api 'music' (policy/grants.json)");
	mf_free(m);
	m = manifest("arena-1", "\"ui\",\"state\",\"ev\",\"timer\",\"rand\",\"log\",\"clock\"");
	cr_assert_eq(grants_check(g, m, err, sizeof(err)), 0, "%s", err);
	mf_free(m);
	grants_free(g);
}

Test(grants, patterns_match_as_documented)
{
	static const struct {
		const char *p, *id;
		int want;
	} cases[] = {
	    {"*", "x", 1},
	    {"dungeon-*", "dungeon-forest", 1},
	    {"dungeon-*", "dungeon-", 1},
	    {"dungeon-*", "dungeon", 0},
	    {"dungeon-*", "my-dungeon-forest", 0},
	    {"*-forest", "dungeon-forest", 1},
	    {"d*n*t", "dungeon-forest", 1},
	    {"d*n*x", "dungeon-forest", 0},
	    {"key-collection", "key-collection", 1},
	    {"key-collection", "key-collection2", 0},
	    {"a?c", "abc", 1},
	    {"a?c", "ac", 0},
	    {"**", "", 1},
	    {"a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(grants_match(cases[i].p, cases[i].id), cases[i].want, "%s vs %s",
			     cases[i].p, cases[i].id);
}

Test(grants, grants_add_up_and_star_means_every_api)
{
	grants *g = parse_ok("{\"version\":1,\"grants\":["
			     "{\"packs\":[\"dungeon-*\"],\"apis\":[\"ecs\"]},"
			     "{\"packs\":[\"*-forest\"],\"apis\":[\"music\"]},"
			     "{\"packs\":[\"admin\"],\"apis\":[\"*\"]}]}");
	mf_manifest *a = manifest("dungeon-forest", "\"ecs\",\"music\"");
	mf_manifest *b = manifest("dungeon-cave", "\"ecs\",\"music\"");
	mf_manifest *c = manifest("admin", "\"ecs\",\"music\",\"quest\"");
	char err[256] = "";

	cr_assert_eq(grants_check(g, a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(grants_check(g, b, err, sizeof(err)), -EPERM);
	cr_assert_str_eq(err,
			 "pack 'dungeon-cave' is not granted api 'music' (policy/grants.json)");
	cr_assert_eq(grants_check(g, c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(grants_check(NULL, c, err, sizeof(err)), -EPERM);
	cr_assert_str_eq(err, "pack 'admin' is not granted api 'ecs' (policy/grants.json)");
	mf_free(a);
	mf_free(b);
	mf_free(c);
	grants_free(g);
}

Test(grants, bad_files_are_named)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"", "grants file is not valid JSON: '[' or '{' expected near end of file (line 1, "
		 "column 0)"},
	    {"[]", "grants: expected a JSON object"},
	    {"{\"version\":2,\"grants\":[]}", "version: expected 1"},
	    {"{\"version\":1}", "grants: expected an array of at most 256 grants"},
	    {"{\"version\":1,\"grants\":[],\"deny\":[]}", "grants file: unknown key \"deny\""},
	    {"{\"version\":1,\"version\":1,\"grants\":[]}",
	     "grants file is not valid JSON: duplicate object key near '\"version\"' (line 1, "
	     "column 22)"},
	    {"{\"version\":1,\"grants\":[7]}", "grants[1]: expected an object {packs, apis}"},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"*\"],\"apis\":[\"ui\"],\"who\":1}]}",
	     "grants[1]: unknown key \"who\""},
	    {"{\"version\":1,\"grants\":[{\"packs\":[],\"apis\":[\"ui\"]}]}",
	     "grants[1].packs: expected an array of 1 to 64 pack id patterns"},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"Dungeon\"],\"apis\":[\"ui\"]}]}",
	     "grants[1].packs[1]: expected a pack id pattern ([a-z0-9._-*?], 1 to 64 bytes)"},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"a\"],\"apis\":[\"ui\",\"e-cs\"]}]}",
	     "grants[1].apis[2]: expected an API name or \"*\""},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"a\"],\"apis\":[\"ui\",\"ui\"]}]}",
	     "grants[1].apis[2]: 'ui' is listed twice"},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"a\"]}]}",
	     "grants[1].apis: expected an array of 1 to 64 API names"},
	    {"{\"version\":1,\"grants\":[{\"packs\":[\"a\"],\"apis\":[\"ui\"],"
	     "\"description\":5}]}",
	     "grants[1].description: expected a string"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		grants *g = (grants *)1;
		char err[256] = "";

		cr_assert_eq(
		    grants_parse(cases[i].json, strlen(cases[i].json), &g, err, sizeof(err)),
		    -EINVAL, "case %zu", i);
		cr_assert_null(g);
		cr_assert_str_eq(err, cases[i].msg, "case %zu", i);
	}
}
