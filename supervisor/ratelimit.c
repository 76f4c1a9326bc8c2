/*
 * ratelimit — token buckets per trigger, per player and per instance (runs in
 * the supervisor; rates come from a checked manifest, names and player ids
 * from clients). Integer arithmetic only: a bucket holds "nanotokens" (one
 * token = 1e9), and refills by elapsed_ns x per_second, so admit/reject
 * sequences are exact and reproducible.
 */
#include "supervisor/ratelimit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NANO 1000000000ull

struct bucket {
	uint64_t level; /* nanotokens */
	uint64_t last;	/* ns of the last refill */
};

struct player {
	char key[SUP_RL_KEY_MAX + 1];
	struct bucket b;
	uint64_t used; /* ns of the last event that named this player */
	int32_t next;  /* hash chain: index in players, -1 ends */
};

struct sup_rl {
	const mf_manifest *m;
	struct bucket global;
	struct bucket *trig; /* one per manifest trigger (used when its rate is set) */
	struct player *players;
	int32_t *heads; /* nheads chains */
	size_t nplayers, maxplayers, nheads;
};

/* ---- one bucket --------------------------------------------------------------- */

static void refill(struct bucket *b, const mf_rate *rt, uint64_t now)
{
	uint64_t cap = (uint64_t)rt->burst * NANO, elapsed;

	if (now <= b->last)
		return;
	elapsed = now - b->last;
	b->last = now;
	if (b->level >= cap || elapsed >= (cap - b->level) / rt->per_second + 1)
		b->level = cap;
	else
		b->level += elapsed * rt->per_second; /* <= cap - level: no overflow */
}

static void fill(struct bucket *b, const mf_rate *rt, uint64_t now)
{
	b->level = (uint64_t)rt->burst * NANO;
	b->last = now;
}

/* ---- player table --------------------------------------------------------------- */

static size_t hash_key(const char *k, size_t nheads)
{
	uint64_t h = 1469598103934665603ull;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return (size_t)(h & (nheads - 1));
}

static void rebuild_chains(sup_rl *rl)
{
	size_t i, h;

	for (i = 0; i < rl->nheads; i++)
		rl->heads[i] = -1;
	for (i = 0; i < rl->nplayers; i++) {
		h = hash_key(rl->players[i].key, rl->nheads);
		rl->players[i].next = rl->heads[h];
		rl->heads[h] = (int32_t)i;
	}
}

static struct player *find_player(sup_rl *rl, const char *key)
{
	int32_t i;

	for (i = rl->heads[hash_key(key, rl->nheads)]; i >= 0; i = rl->players[i].next)
		if (strcmp(rl->players[i].key, key) == 0)
			return &rl->players[i];
	return NULL;
}

/* The table is full: drop every refilled bucket, else the fullest one. */
static void evict(sup_rl *rl, uint64_t now)
{
	const mf_rate *rt = &rl->m->rate_player;
	uint64_t cap = (uint64_t)rt->burst * NANO;
	size_t i, n = 0, victim = 0;

	for (i = 0; i < rl->nplayers; i++) {
		struct player *p = &rl->players[i];
		refill(&p->b, rt, now);
		if (p->b.level >= cap)
			continue;
		rl->players[n++] = *p;
	}
	if (n == rl->nplayers) {
		for (i = 1; i < n; i++) {
			const struct player *p = &rl->players[i], *v = &rl->players[victim];
			if (p->b.level > v->b.level ||
			    (p->b.level == v->b.level && p->used < v->used))
				victim = i;
		}
		rl->players[victim] = rl->players[--n];
	}
	rl->nplayers = n;
	rebuild_chains(rl);
}

static struct player *get_player(sup_rl *rl, const char *key, uint64_t now)
{
	struct player *p = find_player(rl, key);
	size_t h;

	if (p != NULL)
		return p;
	if (rl->nplayers == rl->maxplayers)
		evict(rl, now);
	p = &rl->players[rl->nplayers];
	snprintf(p->key, sizeof p->key, "%s", key);
	fill(&p->b, &rl->m->rate_player, now);
	p->used = now;
	h = hash_key(p->key, rl->nheads);
	p->next = rl->heads[h];
	rl->heads[h] = (int32_t)rl->nplayers++;
	return p;
}

/* ---- public ---------------------------------------------------------------------- */

static int any_rate(const mf_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n_triggers; i++)
		if (m->triggers[i].rate.per_second)
			return 1;
	return m->rate_global.per_second || m->rate_player.per_second;
}

int sup_rl_new(const mf_manifest *m, size_t max_players, uint64_t now_ns, sup_rl **out)
{
	sup_rl *rl;
	size_t i;

	*out = NULL;
	if (max_players == 0 || max_players > INT32_MAX / 2)
		return -EINVAL;
	if (!any_rate(m))
		return 0;
	if ((rl = calloc(1, sizeof *rl)) == NULL)
		return -ENOMEM;
	rl->m = m;
	rl->maxplayers = max_players;
	for (rl->nheads = 1; rl->nheads < max_players; rl->nheads <<= 1)
		;
	rl->trig = calloc(m->n_triggers + 1, sizeof *rl->trig);
	if (m->rate_player.per_second) {
		rl->players = calloc(max_players, sizeof *rl->players);
		rl->heads = malloc(rl->nheads * sizeof *rl->heads);
	}
	if (rl->trig == NULL || (m->rate_player.per_second && (!rl->players || !rl->heads))) {
		sup_rl_free(rl);
		return -ENOMEM;
	}
	if (rl->heads)
		rebuild_chains(rl);
	for (i = 0; i < m->n_triggers; i++)
		if (m->triggers[i].rate.per_second)
			fill(&rl->trig[i], &m->triggers[i].rate, now_ns);
	if (m->rate_global.per_second)
		fill(&rl->global, &m->rate_global, now_ns);
	*out = rl;
	return 0;
}

void sup_rl_free(sup_rl *rl)
{
	if (rl == NULL)
		return;
	free(rl->trig);
	free(rl->players);
	free(rl->heads);
	free(rl);
}

size_t sup_rl_players(const sup_rl *rl)
{
	return rl ? rl->nplayers : 0;
}

static int pattern_match(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, name, n - 1) == 0;
	return strcmp(pattern, name) == 0;
}

/* A player id is client text: keep the message printable ASCII (no cut
 * UTF-8 sequence, no control characters). */
static void ascii_only(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int reject(char *msg, size_t len, const char *what, const mf_rate *rt)
{
	snprintf(msg, len, "rate limit of %s exceeded (%" PRIu32 "/s, burst %" PRIu32 ")", what,
		 rt->per_second, rt->burst);
	return -EAGAIN;
}

/* Refills and checks the trigger buckets that apply; -EAGAIN names the first
 * empty one. */
static int check_triggers(sup_rl *rl, uint64_t now, const char *event, char *msg, size_t len)
{
	const mf_manifest *m = rl->m;
	char what[128];
	size_t i;

	for (i = 0; i < m->n_triggers; i++) {
		const mf_trigger *t = &m->triggers[i];
		if (!t->rate.per_second || !pattern_match(t->event, event))
			continue;
		refill(&rl->trig[i], &t->rate, now);
		if (rl->trig[i].level < NANO) {
			snprintf(what, sizeof what, "trigger '%s'", t->id);
			return reject(msg, len, what, &t->rate);
		}
	}
	return 0;
}

static void spend_triggers(sup_rl *rl, const char *event)
{
	size_t i;

	for (i = 0; i < rl->m->n_triggers; i++)
		if (rl->m->triggers[i].rate.per_second &&
		    pattern_match(rl->m->triggers[i].event, event))
			rl->trig[i].level -= NANO;
}

int sup_rl_admit(sup_rl *rl, uint64_t now_ns, const char *event, const char *player, char *msg,
		 size_t msglen)
{
	const mf_manifest *m;
	struct player *p = NULL;
	char what[SUP_RL_KEY_MAX + 16];

	if (rl == NULL)
		return 0;
	m = rl->m;
	if (check_triggers(rl, now_ns, event, msg, msglen) < 0)
		return -EAGAIN;
	if (m->rate_player.per_second && player != NULL) {
		p = get_player(rl, player, now_ns);
		refill(&p->b, &m->rate_player, now_ns);
		p->used = now_ns;
		if (p->b.level < NANO) {
			snprintf(what, sizeof what, "player '%.64s'", player);
			ascii_only(what);
			return reject(msg, msglen, what, &m->rate_player);
		}
	}
	if (m->rate_global.per_second) {
		refill(&rl->global, &m->rate_global, now_ns);
		if (rl->global.level < NANO)
			return reject(msg, msglen, "the instance (global)", &m->rate_global);
		rl->global.level -= NANO;
	}
	spend_triggers(rl, event);
	if (p)
		p->b.level -= NANO;
	return 0;
}

int sup_rl_player(const char *field, const Moonpen__V1__Value *payload, char *buf, size_t len)
{
	const Moonpen__V1__Table *t;
	size_t i;

	if (field == NULL || payload == NULL || len == 0 ||
	    payload->kind_case != MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return 0;
	t = payload->table_value;
	for (i = 0; i < t->n_map; i++) {
		const Moonpen__V1__Value *k = t->map[i]->key, *v = t->map[i]->value;
		if (k == NULL || v == NULL ||
		    k->kind_case != MOONPEN__V1__VALUE__KIND_STRING_VALUE ||
		    strcmp(k->string_value, field) != 0)
			continue;
		if (v->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE) {
			snprintf(buf, len < SUP_RL_KEY_MAX + 1 ? len : SUP_RL_KEY_MAX + 1, "%s",
				 v->string_value);
			return 1;
		}
		if (v->kind_case == MOONPEN__V1__VALUE__KIND_INT_VALUE) {
			snprintf(buf, len, "%" PRId64, v->int_value);
			return 1;
		}
		return 0;
	}
	return 0;
}
