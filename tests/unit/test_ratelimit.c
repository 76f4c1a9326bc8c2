/*
 * test_ratelimit — token buckets with an injected clock: exact admit/reject
 * sequences per trigger, per player and global, refill, burst, the order of
 * checks (nothing spent on a rejection) and the bounded player table.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/manifest.h"
#include "common/val.h"
#include "supervisor/ratelimit.h"

#define MS 1000000ull /* ns */

static mf_manifest *M;
static sup_rl *RL;

static void load(const char *rate_limits, size_t max_players)
{
	char json[2048], err[256];

	snprintf(json, sizeof json,
		 "{\"id\":\"rl\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
		 "\"player_field\":\"player\","
		 "\"triggers\":[{\"id\":\"enrage\",\"event\":\"boss.enrage\",\"action\":\"f\"},"
		 "{\"id\":\"areas\",\"event\":\"OnArea:*\",\"action\":\"f\"}],"
		 "\"rate_limits\":%s}",
		 rate_limits);
	cr_assert_eq(mf_parse(json, strlen(json), &M, err, sizeof err), 0, "%s", err);
	cr_assert_eq(sup_rl_new(M, max_players, 1000 * MS, &RL), 0);
}

static void unload(void)
{
	sup_rl_free(RL);
	mf_free(M);
	RL = NULL;
	M = NULL;
}

/* "1" per admitted event, "0" per rejected one, at the given times (ms). */
static const char *run(const char *event, const char *player, const uint64_t *ms, size_t n)
{
	static char out[128];
	char msg[256];
	size_t i;

	for (i = 0; i < n && i + 1 < sizeof out; i++)
		out[i] =
		    sup_rl_admit(RL, ms[i] * MS, event, player, msg, sizeof msg) == 0 ? '1' : '0';
	out[i] = '\0';
	return out;
}

Test(ratelimit, no_rates_no_limiter)
{
	const char *j = "{\"id\":\"a\",\"version\":\"0.0.1\",\"engine\":\"lua\","
			"\"entry\":\"main.lua\"}";
	char err[256], msg[64];
	mf_manifest *m = NULL;
	sup_rl *rl = (sup_rl *)1;

	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof err), 0, "%s", err);
	cr_assert_eq(sup_rl_new(m, 16, 0, &rl), 0);
	cr_assert_null(rl);
	cr_assert_eq(sup_rl_admit(NULL, 0, "x", "p", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_new(m, 0, 0, &rl), -EINVAL);
	mf_free(m);
}

Test(ratelimit, global_burst_then_refill, .fini = unload)
{
	/* 2 per second, burst 3: three at once, then one every 500 ms */
	uint64_t t[] = {1000, 1000, 1000, 1000, 1499, 1500, 1500, 2000, 2999, 3000};

	load("{\"global\":{\"per_second\":2,\"burst\":3}}", 16);
	cr_assert_str_eq(run("anything", NULL, t, 10), "1110010111");
}

Test(ratelimit, burst_defaults_to_rate_and_caps_savings, .fini = unload)
{
	/* 1/s, burst 1: a long idle time does not save up more than one token */
	uint64_t t[] = {1000, 1001, 60000, 60000, 60999, 61000};

	load("{\"global\":{\"per_second\":1}}", 16);
	cr_assert_eq(M->rate_global.burst, 1);
	cr_assert_str_eq(run("e", NULL, t, 6), "101001");
}

Test(ratelimit, trigger_bucket_only_for_matching_events, .fini = unload)
{
	uint64_t t[] = {1000, 1000, 1999, 2000};
	char msg[256];

	load("{\"triggers\":{\"enrage\":{\"per_second\":1,\"burst\":1},"
	     "\"areas\":{\"per_second\":1,\"burst\":2}}}",
	     16);
	cr_assert_str_eq(run("boss.enrage", NULL, t, 4), "1001");
	/* other events are not limited by enrage */
	cr_assert_str_eq(run("boss.enraged", NULL, t, 4), "1111");
	/* the prefix pattern: OnArea:* shares one bucket of burst 2 */
	cr_assert_eq(sup_rl_admit(RL, 5000 * MS, "OnArea:north", NULL, msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_admit(RL, 5000 * MS, "OnArea:south", NULL, msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_admit(RL, 5000 * MS, "OnArea:east", NULL, msg, sizeof msg), -EAGAIN);
	cr_assert_str_eq(msg, "rate limit of trigger 'areas' exceeded (1/s, burst 2)");
	cr_assert_eq(sup_rl_admit(RL, 5000 * MS, "OnArea", NULL, msg, sizeof msg), 0);
}

Test(ratelimit, players_are_separate, .fini = unload)
{
	uint64_t t[] = {1000, 1000, 1000};
	char msg[256];

	load("{\"per_player\":{\"per_second\":1,\"burst\":2}}", 16);
	cr_assert_str_eq(run("e", "p1", t, 3), "110");
	cr_assert_str_eq(run("e", "p2", t, 3), "110");
	cr_assert_str_eq(run("e", NULL, t, 3), "111"); /* no player: no player bucket */
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p1", msg, sizeof msg), -EAGAIN);
	cr_assert_str_eq(msg, "rate limit of player 'p1' exceeded (1/s, burst 2)");
	cr_assert_eq(sup_rl_players(RL), 2);
}

Test(ratelimit, rejection_spends_nothing, .fini = unload)
{
	char msg[256];

	/* p1's rejections (by its own bucket) must not drain the global bucket */
	load("{\"global\":{\"per_second\":1,\"burst\":3},"
	     "\"per_player\":{\"per_second\":1,\"burst\":1}}",
	     16);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p1", msg, sizeof msg), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p1", msg, sizeof msg), -EAGAIN);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p2", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p3", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p4", msg, sizeof msg), -EAGAIN);
	cr_assert_str_eq(msg, "rate limit of the instance (global) exceeded (1/s, burst 3)");
	/* p4 was rejected by global: its own token is still there a second later */
	cr_assert_eq(sup_rl_admit(RL, 2000 * MS, "e", "p4", msg, sizeof msg), 0);
}

Test(ratelimit, all_buckets_must_admit, .fini = unload)
{
	char msg[256];

	load("{\"global\":{\"per_second\":100},"
	     "\"triggers\":{\"enrage\":{\"per_second\":1}},"
	     "\"per_player\":{\"per_second\":1,\"burst\":2}}",
	     16);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "boss.enrage", "p1", msg, sizeof msg), 0);
	/* trigger empty: rejected, p1 keeps its second token */
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "boss.enrage", "p1", msg, sizeof msg), -EAGAIN);
	cr_assert(strstr(msg, "trigger 'enrage'") != NULL, "%s", msg);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "other", "p1", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "other", "p1", msg, sizeof msg), -EAGAIN);
	cr_assert(strstr(msg, "player 'p1'") != NULL, "%s", msg);
}

Test(ratelimit, clock_going_back_is_ignored, .fini = unload)
{
	uint64_t t[] = {5000, 4000, 4500, 5999, 6000};

	load("{\"global\":{\"per_second\":1}}", 16);
	cr_assert_str_eq(run("e", NULL, t, 5), "10001");
}

Test(ratelimit, player_table_is_bounded, .fini = unload)
{
	char msg[256], name[16];
	int i;

	load("{\"per_player\":{\"per_second\":1,\"burst\":1}}", 4);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "p%d", i);
		cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", name, msg, sizeof msg), 0);
	}
	cr_assert_eq(sup_rl_players(RL), 4);
	/* all four are empty: a fifth player evicts exactly one (the fullest, then
	 * the least recently used: p0) */
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p4", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_players(RL), 4);
	cr_assert_eq(sup_rl_admit(RL, 1000 * MS, "e", "p1", msg, sizeof msg), -EAGAIN);
	/* a second later every bucket has refilled: a newcomer sweeps them all */
	cr_assert_eq(sup_rl_admit(RL, 2000 * MS, "e", "p9", msg, sizeof msg), 0);
	cr_assert_eq(sup_rl_players(RL), 1); /* p9 alone */
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "x%d", i);
		cr_assert_eq(
		    sup_rl_admit(RL, (3000 + (uint64_t)i) * MS, "e", name, msg, sizeof msg), 0);
		cr_assert_leq(sup_rl_players(RL), 4);
	}
}

Test(ratelimit, player_from_payload)
{
	val_t *t = val_new_table();
	char buf[SUP_RL_KEY_MAX + 1], longid[300];

	cr_assert_eq(sup_rl_player("player", t, buf, sizeof buf), 0);
	cr_assert_eq(val_table_set(t, val_new_string("hp", 2), val_new_int(3)), 0);
	cr_assert_eq(val_table_set(t, val_new_string("player", 6), val_new_int(42)), 0);
	cr_assert_eq(sup_rl_player("player", t, buf, sizeof buf), 1);
	cr_assert_str_eq(buf, "42");
	cr_assert_eq(sup_rl_player(NULL, t, buf, sizeof buf), 0);
	cr_assert_eq(sup_rl_player("who", t, buf, sizeof buf), 0);
	val_free(t);
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	t = val_new_table();
	cr_assert_eq(
	    val_table_set(t, val_new_string("player", 6), val_new_string(longid, strlen(longid))),
	    0);
	cr_assert_eq(sup_rl_player("player", t, buf, sizeof buf), 1);
	cr_assert_eq(strlen(buf), SUP_RL_KEY_MAX);
	val_free(t);
	t = val_new_nil();
	cr_assert_eq(sup_rl_player("player", t, buf, sizeof buf), 0);
	val_free(t);
}
