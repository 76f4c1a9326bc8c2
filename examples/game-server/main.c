/*
 * game-server — an example game server on libmoonpen: plays a scripted session
 * against a running moonpend and prints every step and its effects. It owns a
 * small world (the players' inventories) and answers the scripts' queries
 * from it: a reply PENDING with a host_call is answered with mp_host_result
 * (a value, or an error for a query it does not know) until the input's final
 * result arrives.
 *
 * Runs as an ordinary client process. It trusts moonpend's replies as far as
 * libmoonpen checked them (decoded, ids matched, Values bounded).
 *
 *   game-server [--url URL]
 *
 * Exit status: 0 when every request was answered with status ok, 1 when one
 * failed (transport error or error status: the session stops there), 2 for a
 * usage error.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/moonpen.h"
#include "common/status.h"

/* ---- printing Values as Lua literals --------------------------------------------------- */

static void print_val(const val_t *v);

static void print_quoted(const uint8_t *p, size_t len)
{
	size_t i;

	putchar('"');
	for (i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] == '\n')
			fputs("\\n", stdout);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			printf("\\x%02x", p[i]);
		else
			putchar(p[i]); /* UTF-8 passes through; bytes print as they are */
	}
	putchar('"');
}

static int is_lua_name(const char *s)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else", "elseif", "end",
					 "false", "for",   "function", "goto", "if",	 "in",
					 "local", "nil",   "not",      "or",   "repeat", "return",
					 "then",  "true",  "until",    "while"};
	size_t i;

	if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	for (i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (strcmp(s, kw[i]) == 0)
			return 0;
	return 1;
}

static void print_table(const Moonpen__V1__Table *t)
{
	size_t i;

	putchar('{');
	for (i = 0; t != NULL && i < t->n_array; i++) {
		if (i > 0)
			putchar(',');
		print_val(t->array[i]);
	}
	for (i = 0; t != NULL && i < t->n_map; i++) {
		const val_t *k = t->map[i]->key;

		if (i > 0 || t->n_array > 0)
			putchar(',');
		if (k != NULL && k->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE &&
		    is_lua_name(k->string_value)) {
			fputs(k->string_value, stdout);
		} else {
			putchar('[');
			print_val(k);
			putchar(']');
		}
		putchar('=');
		print_val(t->map[i]->value);
	}
	putchar('}');
}

static void print_float(double d)
{
	if (isnan(d))
		fputs("0/0", stdout);
	else if (isinf(d))
		fputs(d > 0 ? "1/0" : "-1/0", stdout);
	else if (d == floor(d) && fabs(d) < 1e15)
		printf("%.1f", d); /* Lua prints integral floats as 5.0 */
	else
		printf("%.14g", d);
}

static void print_val(const val_t *v)
{
	switch (v != NULL ? v->kind_case : MOONPEN__V1__VALUE__KIND__NOT_SET) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		fputs(v->bool_value ? "true" : "false", stdout);
		break;
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		printf("%" PRId64, v->int_value);
		break;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		print_float(v->float_value);
		break;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		print_quoted((const uint8_t *)v->string_value, strlen(v->string_value));
		break;
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		print_quoted(v->bytes_value.data, v->bytes_value.len);
		break;
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		print_table(v->table_value);
		break;
	default:
		fputs("nil", stdout);
	}
}

static void print_vals(Moonpen__V1__Value *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", stdout);
		print_val(v[i]);
	}
}

/* ---- printing replies ------------------------------------------------------------------------ */

static void print_hex(const ProtobufCBinaryData *b)
{
	size_t i;

	if (b->len == 0)
		putchar('-');
	for (i = 0; i < b->len && i < 8; i++)
		printf("%02x", b->data[i]);
	if (b->len > 8)
		fputs("...", stdout);
}

static void print_result(const Moonpen__V1__Result *res)
{
	size_t i;

	for (i = 0; i < res->n_logs; i++)
		printf("  log [%s] %s\n", res->logs[i]->level, res->logs[i]->message);
	for (i = 0; i < res->n_effects; i++) {
		const Moonpen__V1__Effect *e = res->effects[i];

		printf("  effect %s.%s(", e->api, e->fn);
		print_vals(e->args, e->n_args);
		printf(")\n");
	}
	if (res->n_returns > 0) {
		fputs("  returns ", stdout);
		print_vals(res->returns, res->n_returns);
		putchar('\n');
	}
	printf("  tick %" PRIu64 ", hash ", res->tick);
	print_hex(&res->state_hash);
	putchar('\n');
}

static void print_info(const Moonpen__V1__InstanceInfo *in)
{
	size_t i;

	printf("  instance %s %s: pack %s@%s, seed %" PRIu64 ", tick %" PRIu64 " (%u ms),"
	       " worker %d, inputs %" PRIu64 ", restarts %u, hash ",
	       in->instance_id, mp_state_name(in->state), in->pack_id, in->pack_version, in->seed,
	       in->tick, in->tick_ms, in->worker_pid, in->inputs, in->restarts);
	print_hex(&in->state_hash);
	fputs("\n  layers:", stdout);
	for (i = 0; i < in->n_layers; i++)
		printf(" %s", in->layers[i]);
	putchar('\n');
	if (in->reason[0] != '\0')
		printf("  reason: %s\n", in->reason);
}

/* Prints a step's outcome; returns 0 when it went through with status ok. */
static int report(mp_client *c, int r, mp_response *resp)
{
	st_code code;

	if (r < 0) {
		printf("  transport error: %s (%s)\n", mp_strerror(r), mp_last_error(c));
		return -1;
	}
	if (resp->result != NULL)
		print_result(resp->result);
	if (resp->info != NULL)
		print_info(resp->info);
	code = mp_status_code(resp);
	if (code != MOONPEN__V1__STATUS__CODE__OK) {
		printf("  status %s: %s\n", st_name(code), resp->status->message);
		if (resp->status->traceback[0] != '\0')
			printf("  %s\n", resp->status->traceback);
	}
	mp_response_free(resp);
	return code == MOONPEN__V1__STATUS__CODE__OK ? 0 : -1;
}

/* ---- the world: what players carry (the server owns it; scripts ask) ------------------------ */

#define WORLD_MAX_HOLDINGS 64 /* (player, item) pairs the demo world keeps */
#define WORLD_MAX_NAME 64     /* bytes of a player or item name, NUL included */
#define MAX_QUERIES 64	      /* queries answered for one input before giving up */

struct holding {
	char player[WORLD_MAX_NAME];
	char item[WORLD_MAX_NAME];
	int64_t count;
};

static struct holding world[WORLD_MAX_HOLDINGS];
static size_t n_world;

/* The holding of player/item, NULL when the world has none. */
static struct holding *holding_find(const char *player, const char *item)
{
	size_t i;

	for (i = 0; i < n_world; i++)
		if (strcmp(world[i].player, player) == 0 && strcmp(world[i].item, item) == 0)
			return &world[i];
	return NULL;
}

/* Gives player one item. Returns 0, or -1 when the world is full or a name too long. */
static int world_give(const char *player, const char *item)
{
	struct holding *h = holding_find(player, item);

	if (h == NULL) {
		if (n_world == WORLD_MAX_HOLDINGS || strlen(player) >= WORLD_MAX_NAME ||
		    strlen(item) >= WORLD_MAX_NAME)
			return -1;
		h = &world[n_world++];
		snprintf(h->player, sizeof h->player, "%s", player);
		snprintf(h->item, sizeof h->item, "%s", item);
		h->count = 0;
	}
	h->count++;
	return 0;
}

static int is_string(const val_t *v)
{
	return v != NULL && v->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE;
}

/* Answers a query from the world: 0 and *count, or -1 with the error text for
 * the script in err (an unknown api.fn, or arguments it cannot read). */
static int world_answer(const Moonpen__V1__HostCall *hc, int64_t *count, char *err, size_t errlen)
{
	const struct holding *h;

	if (strcmp(hc->api, "inventory") != 0 || strcmp(hc->fn, "count") != 0) {
		snprintf(err, errlen, "game-server: unknown query %s.%s", hc->api, hc->fn);
		return -1;
	}
	if (hc->n_args != 2 || !is_string(hc->args[0]) || !is_string(hc->args[1])) {
		snprintf(err, errlen, "game-server: inventory.count takes (player, item) strings");
		return -1;
	}
	h = holding_find(hc->args[0]->string_value, hc->args[1]->string_value);
	*count = h != NULL ? h->count : 0;
	return 0;
}

/* ---- queries: PENDING replies are answered until the input's final reply ---------------- */

/* Prints the query and its answer, sends the answer; *next is the reply. */
static int answer_one(mp_client *c, const char *id, const Moonpen__V1__HostCall *hc,
		      mp_response **next)
{
	char err[256];
	int64_t count = 0;
	val_t *v = NULL;
	int r;

	printf("  query #%" PRIu64 " %s.%s(", hc->call_id, hc->api, hc->fn);
	print_vals(hc->args, hc->n_args);
	printf("), answer within %u ms\n", hc->timeout_ms);
	if (world_answer(hc, &count, err, sizeof err) == 0) {
		v = val_new_int(count);
		if (v == NULL)
			return MP_ENOMEM;
		printf("  answer %" PRId64 "\n", count);
	} else {
		printf("  answer error: %s\n", err);
	}
	r = mp_host_result(c, id, hc->call_id, v, v != NULL ? NULL : err, next);
	val_free(v);
	return r;
}

/* While *resp is PENDING on a query, answers it and replaces *resp with the
 * next reply. Returns 0 (*resp is the input's final reply, or still PENDING
 * after MAX_QUERIES answers), or a libmoonpen error (*resp NULL). */
static int answer_queries(mp_client *c, const char *id, mp_response **resp)
{
	int n;

	for (n = 0; mp_status_code(*resp) == MOONPEN__V1__STATUS__CODE__PENDING &&
		    (*resp)->host_call != NULL;
	     n++) {
		mp_response *next = NULL;
		int r;

		if (n == MAX_QUERIES) {
			printf("  more than %d queries in one input: not answered\n", MAX_QUERIES);
			return 0;
		}
		r = answer_one(c, id, (*resp)->host_call, &next);
		mp_response_free(*resp);
		*resp = next;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Answers the queries of a request's reply (r: its libmoonpen return), then prints the
 * outcome; returns 0 when the input went through with status ok. */
static int finish(mp_client *c, const char *id, int r, mp_response *resp)
{
	if (r == 0)
		r = answer_queries(c, id, &resp);
	return report(c, r, resp);
}

/* ---- the steps
 * ----------------------------------------------------------------------------------- */

static int create(mp_client *c, const char *id, const char *pack, uint64_t seed)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = seed, .tick_ms = 50};
	mp_response *resp = NULL;
	int r;

	printf("== create %s: pack %s, seed %" PRIu64 ", 50 ms ticks\n", id, pack, seed);
	r = mp_create(c, &o, &resp);
	return report(c, r, resp);
}

/* Sends name with payload {player=player}. A pickup ("OnPickup:<item>") first
 * puts the item in the player's inventory. */
static int player_event(mp_client *c, const char *id, const char *name, const char *player)
{
	val_t *payload = val_new_table(), *k = val_new_string("player", 6);
	val_t *v = val_new_string(player, strlen(player));
	mp_response *resp = NULL;
	int r;

	if (payload == NULL || k == NULL || v == NULL || val_table_set(payload, k, v) < 0) {
		val_free(payload);
		val_free(k);
		val_free(v);
		printf("  out of memory\n");
		return -1;
	}
	printf("== %s: event %s {player=\"%s\"}\n", id, name, player);
	if (strncmp(name, "OnPickup:", 9) == 0 && world_give(player, name + 9) < 0) {
		val_free(payload);
		printf("  the world is full\n");
		return -1;
	}
	r = mp_event(c, id, name, payload, &resp);
	val_free(payload);
	return finish(c, id, r, resp);
}

static int tick(mp_client *c, const char *id, uint32_t n, const char *why)
{
	mp_response *resp = NULL;
	int r;

	printf("== %s: tick %u (%s)\n", id, n, why);
	r = mp_tick(c, id, n, &resp);
	return finish(c, id, r, resp);
}

static int info(mp_client *c, const char *id)
{
	mp_response *resp = NULL;
	int r;

	printf("== %s: info\n", id);
	r = mp_info(c, id, &resp);
	return report(c, r, resp);
}

static int close_instance(mp_client *c, const char *id)
{
	mp_response *resp = NULL;
	int r;

	printf("== %s: close\n", id);
	r = mp_close(c, id, &resp);
	return report(c, r, resp);
}

/* The forest: a lever tip, two waves, the gate, the ogre's wave. */
static int play_forest(mp_client *c)
{
	const char *id = "forest-1";
	int r = create(c, id, "dungeon-forest", 42);

	if (r == 0)
		r = player_event(c, id, "OnLeverSwitch", "p1");
	if (r == 0)
		r = tick(c, id, 100, "5 s: wave 1");
	if (r == 0)
		r = tick(c, id, 100, "5 s: wave 2");
	if (r == 0)
		r = player_event(c, id, "OnLeverSwitch", "p1");
	if (r == 0)
		r = tick(c, id, 100, "5 s: wave 3");
	return r;
}

/* The key collection: two pickups, the vault stays shut (the script asks the
 * server's inventory: 2 keys), the third pickup brings the boss, the vault
 * opens (3 keys). */
static int play_keys(mp_client *c)
{
	const char *id = "keys-1";
	int r = create(c, id, "key-collection", 42);
	int i;

	for (i = 0; r == 0 && i < 2; i++)
		r = player_event(c, id, "OnPickup:key", "p1");
	if (r == 0)
		r = player_event(c, id, "OnAreaEnter:vault", "p1");
	if (r == 0)
		r = player_event(c, id, "OnPickup:key", "p1");
	if (r == 0)
		r = player_event(c, id, "OnAreaEnter:vault", "p1");
	return r;
}

static int wrap_up(mp_client *c)
{
	int r = info(c, "forest-1");

	if (r == 0)
		r = info(c, "keys-1");
	if (r == 0)
		r = close_instance(c, "forest-1");
	if (r == 0)
		r = close_instance(c, "keys-1");
	return r;
}

int main(int argc, char **argv)
{
	const char *url = getenv("MOONPEN_URL");
	mp_client *c = NULL;
	int r;

	/* 1. the command line: game-server [--url URL] */
	if (argc == 3 && strcmp(argv[1], "--url") == 0) {
		url = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "usage: game-server [--url URL]\n");
		return 2;
	}
	if (url == NULL || url[0] == '\0')
		url = MP_DEFAULT_URL;
	/* 2. one client for this (single-threaded) server */
	r = mp_connect(url, &c);
	if (r < 0) {
		fprintf(stderr, "game-server: %s: %s\n", url, mp_strerror(r));
		return 1;
	}
	/* 3. the session: forest, keys, then info and close for both */
	r = play_forest(c);
	if (r == 0)
		r = play_keys(c);
	if (r == 0)
		r = wrap_up(c);
	mp_disconnect(c);
	printf(r == 0 ? "session complete\n" : "session failed\n");
	return r == 0 ? 0 : 1;
}
