/*
 * store: round trips of every table, grouped commits (exactly two commits for
 * eight appends held behind a lock), eight concurrent appenders, crash safety
 * (a child SIGKILLed or _exit()ing at a random point loses no acknowledged
 * input and duplicates none), snapshot trimming, truncation, the older
 * snapshots and history sst_load hands over (history on), incidents (round
 * trip, one per instance, kept by a reset, dropped with the instance, a
 * malformed row refused), the migration of a schema version 1 file, and the
 * exact error for a foreign, corrupt, newer or locked store. Test process
 * only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/store.h"
#include "tests/support/files.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char tmp[64];

static void mk_tmp(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/mp-store-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_tmp(void)
{
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = mk_tmp, .fini = rm_tmp);

static char *db_path(void)
{
	static char p[128];

	snprintf(p, sizeof p, "%s/" SST_DB_NAME, tmp);
	return p;
}

static sst *open_store(const char *mode, unsigned keep)
{
	char err[512] = "";
	sst *st = NULL;

	cr_assert_eq(sst_open(tmp, mode, 2, keep, &st, err, sizeof err), 0, "%s", err);
	cr_assert_not_null(st);
	return st;
}

/* A count from the database file, through a connection of the test's own. */
static long long count(const char *sql)
{
	return tf_sql_count(db_path(), sql);
}

static void raw_exec(const char *sql)
{
	sqlite3 *db = NULL;

	cr_assert_eq(sqlite3_open(db_path(), &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(db));
	sqlite3_close(db);
}

static void hash_of(uint64_t v, uint8_t h[32])
{
	for (int i = 0; i < 32; i++)
		h[i] = (uint8_t)(v * 31 + (uint64_t)i);
}

static sst_instance inst_row(const char *id)
{
	sst_instance in = {.id = id,
			   .pack_id = "dungeon",
			   .pack_version = "1.2.0",
			   .seed = 0xfedcba9876543210ull,
			   .tick_ms = 50,
			   .status = 1,
			   .reason = ""};
	return in;
}

static void put_inst(sst *st, const char *id)
{
	sst_instance in = inst_row(id);

	cr_assert_eq(sst_put_instance(st, &in, 0), 0);
}

/* The packed input of (instance, index) that the tests append. */
static size_t input_bytes(const char *id, uint64_t i, char *buf, size_t n)
{
	return (size_t)snprintf(buf, n, "input %s #%llu", id, (unsigned long long)i);
}

static int append(sst *st, const char *id, uint64_t i)
{
	char b[96];
	size_t n = input_bytes(id, i, b, sizeof b);

	return sst_append_input(st, id, i, (const uint8_t *)b, n);
}

/* Everything sst_load found, copied. */
#define MAXI 16
struct got {
	int n;
	struct {
		char id[64], pack_id[32], pack_version[32], reason[64];
		char labels[4][2][32];
		size_t n_labels;
		uint64_t seed;
		uint32_t tick_ms;
		int status;
		int64_t created;
		int has_snap;
		uint64_t snap_input, snap_tick;
		uint8_t snap_hash[32];
		char snap_blob[64];
		uint64_t first_input;
		size_t n_inputs;
		int inputs_ok; /* every input has the bytes append() wrote, in order */
		size_t n_dead;
		sst_dead_letter dead0;
		char dead0_kind[16], dead0_name[32], dead0_msg[64];
	} i[MAXI];
};

static void got_inputs(struct got *g, int k, const sst_loaded *l)
{
	g->i[k].n_inputs = l->n_inputs;
	g->i[k].first_input = l->n_inputs ? l->inputs[0].index : UINT64_MAX;
	g->i[k].inputs_ok = 1;
	for (size_t j = 0; j < l->n_inputs; j++) {
		char b[96];
		size_t n = input_bytes(l->inst.id, l->inputs[j].index, b, sizeof b);
		if (l->inputs[j].len != n || memcmp(l->inputs[j].data, b, n) != 0 ||
		    (j && l->inputs[j].index != l->inputs[j - 1].index + 1))
			g->i[k].inputs_ok = 0;
	}
}

static int visit(void *ud, const sst_loaded *l)
{
	struct got *g = ud;
	int k = g->n++;

	cr_assert_lt(k, MAXI);
	snprintf(g->i[k].id, sizeof g->i[k].id, "%s", l->inst.id);
	snprintf(g->i[k].pack_id, sizeof g->i[k].pack_id, "%s", l->inst.pack_id);
	snprintf(g->i[k].pack_version, sizeof g->i[k].pack_version, "%s", l->inst.pack_version);
	snprintf(g->i[k].reason, sizeof g->i[k].reason, "%s", l->inst.reason);
	g->i[k].n_labels = l->inst.n_labels;
	for (size_t j = 0; j < l->inst.n_labels && j < 4; j++) {
		snprintf(g->i[k].labels[j][0], 32, "%s", l->inst.labels[j].key);
		snprintf(g->i[k].labels[j][1], 32, "%s", l->inst.labels[j].value);
	}
	g->i[k].seed = l->inst.seed;
	g->i[k].tick_ms = l->inst.tick_ms;
	g->i[k].status = l->inst.status;
	g->i[k].created = l->inst.created_ms;
	g->i[k].has_snap = l->snap != NULL;
	if (l->snap) {
		g->i[k].snap_input = l->snap->input;
		g->i[k].snap_tick = l->snap->tick;
		memcpy(g->i[k].snap_hash, l->snap->hash, 32);
		snprintf(g->i[k].snap_blob, sizeof g->i[k].snap_blob, "%.*s", (int)l->snap->len,
			 (const char *)l->snap->blob);
	}
	got_inputs(g, k, l);
	g->i[k].n_dead = l->n_dead;
	if (l->n_dead) {
		g->i[k].dead0 = l->dead[0];
		snprintf(g->i[k].dead0_kind, 16, "%s", l->dead[0].kind);
		snprintf(g->i[k].dead0_name, 32, "%s", l->dead[0].name);
		snprintf(g->i[k].dead0_msg, 64, "%s", l->dead[0].message);
	}
	return 0;
}

static void load(sst *st, struct got *g)
{
	char err[512] = "";

	memset(g, 0, sizeof *g);
	cr_assert_eq(sst_load(st, visit, g, err, sizeof err), 0, "%s", err);
}

/* ---- opening ----------------------------------------------------------------------------------
 */

Test(store, open_creates_private_folder_and_file)
{
	char dir[128], err[512] = "", path[160];
	struct stat sb;
	sst *st = NULL;

	snprintf(dir, sizeof dir, "%s/a/b", tmp);
	cr_assert_eq(sst_open(dir, "process", 2, 4, &st, err, sizeof err), 0, "%s", err);
	cr_assert_eq(stat(dir, &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0700);
	snprintf(path, sizeof path, "%s/" SST_DB_NAME, dir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof path, "%s/" SST_DB_NAME "-wal", dir);
	cr_assert_eq(stat(path, &sb), 0, "WAL mode");
	cr_expect_eq(sb.st_mode & 07777, 0600);
	sst_close(st);
	snprintf(tmp + strlen(tmp), sizeof tmp - strlen(tmp), "/a/b");
	cr_expect_eq(count("PRAGMA user_version"), SST_SCHEMA_VERSION);
	cr_expect_eq(count("PRAGMA application_id"), 0x4d504e44);
	tmp[strlen(tmp) - 4] = '\0';
}

Test(store, memory_mode_is_a_null_store)
{
	char err[64] = "";
	sst *st = (sst *)1;
	sst_stats s;
	struct got g;
	uint8_t h[32] = {0};
	sst_instance in = inst_row("m");

	cr_assert_eq(sst_open(tmp, "memory", 2, 4, &st, err, sizeof err), 0);
	cr_assert_null(st);
	cr_expect_eq(sst_put_instance(st, &in, 0), 0);
	cr_expect_eq(append(st, "m", 0), 0);
	cr_expect_eq(sst_put_snapshot(st, "m", 1, 1, h, h, 32), 0);
	cr_expect_eq(sst_set_status(st, "m", 2, "x"), 0);
	cr_expect_eq(sst_truncate(st, "m", 0), 0);
	cr_expect_eq(sst_drop_instance(st, "m"), 0);
	cr_expect_eq(sst_put_incident(st, "m", 5, "{}", 2), 0);
	load(st, &g);
	cr_expect_eq(g.n, 0);
	sst_get_stats(st, &s);
	cr_expect_eq(s.commits, 0);
	sst_close(st);
	cr_expect_eq(access(db_path(), F_OK), -1, "no file in memory mode");
}

Test(store, bad_settings)
{
	char err[256] = "";
	sst *st = NULL;

	cr_expect_eq(sst_open(tmp, "disk", 2, 4, &st, err, sizeof err), -EINVAL);
	cr_expect_str_eq(err, "bad store settings (durability 'disk', keep 4)");
	cr_expect_eq(sst_open(tmp, "power", 2, 0, &st, err, sizeof err), -EINVAL);
	cr_expect_null(st);
}

Test(store, second_open_of_a_folder_is_refused)
{
	char err[512] = "", want[300];
	sst *st = open_store("process", 4), *st2 = NULL;

	cr_expect_eq(sst_open(tmp, "process", 2, 4, &st2, err, sizeof err), -EBUSY);
	snprintf(want, sizeof want, "%s/moonpen.lock: another moonpend uses this state folder",
		 tmp);
	cr_expect_str_eq(err, want);
	cr_expect_null(st2);
	sst_close(st);
	st = open_store("process", 4); /* released on close */
	sst_close(st);
}

/* ---- round trips ---------------------------------------------------------------------------- */

Test(store, every_table_round_trips)
{
	sst_label labels[] = {{"region", "eu-west"}, {"segment", ""}, {"k\xc3\xa9", "v=1;2"}};
	sst_instance a = inst_row("inst-a"), b = inst_row("inst-b");
	sst_dead_letter d = {.input = 3,
			     .tick = 77,
			     .kind = "event",
			     .name = "OnHit",
			     .code = 8,
			     .message = "worker crashed twice"};
	uint8_t h[32], h2[32];
	struct got g;
	sst *st = open_store("process", 4);

	hash_of(1, h);
	hash_of(2, h2);
	a.labels = labels;
	a.n_labels = 3;
	a.created_ms = 1000;
	b.created_ms = 2000;
	b.seed = 7;
	cr_assert_eq(sst_note_pack(st, "dungeon", "1.2.0", h), 0);
	cr_assert_eq(sst_note_pack(st, "dungeon", "1.2.0", h), 0, "same contents again");
	cr_assert_eq(sst_note_pack(st, "dungeon", "1.2.0", h2), -EEXIST, "altered pack");
	cr_assert_eq(sst_put_instance(st, &a, 0), 0);
	cr_assert_eq(sst_put_instance(st, &b, 0), 0);
	for (uint64_t i = 0; i < 5; i++)
		cr_assert_eq(append(st, "inst-a", i), 0);
	cr_assert_eq(sst_put_snapshot(st, "inst-a", 2, 40, h2, (const uint8_t *)"SNAP-2", 6), 0);
	cr_assert_eq(sst_put_dead_letter(st, "inst-a", &d), 0);
	cr_assert_eq(sst_set_status(st, "inst-b", 2, "more than 5 worker restarts"), 0);
	cr_assert_eq(sst_append_input(st, "inst-b", 0, NULL, 0), 0, "an empty input");
	sst_close(st);

	st = open_store("process", 4);
	load(st, &g);
	cr_assert_eq(g.n, 2);
	cr_expect_str_eq(g.i[0].id, "inst-a", "oldest created first");
	cr_expect_str_eq(g.i[0].pack_id, "dungeon");
	cr_expect_str_eq(g.i[0].pack_version, "1.2.0");
	cr_expect_eq(g.i[0].seed, 0xfedcba9876543210ull, "all 64 bits of the seed");
	cr_expect_eq(g.i[0].tick_ms, 50);
	cr_expect_eq(g.i[0].status, 1);
	cr_expect_eq(g.i[0].created, 1000);
	cr_assert_eq(g.i[0].n_labels, 3);
	cr_expect_str_eq(g.i[0].labels[0][0], "region");
	cr_expect_str_eq(g.i[0].labels[0][1], "eu-west");
	cr_expect_str_eq(g.i[0].labels[1][0], "segment");
	cr_expect_str_eq(g.i[0].labels[1][1], "");
	cr_expect_str_eq(g.i[0].labels[2][0], "k\xc3\xa9");
	cr_expect_str_eq(g.i[0].labels[2][1], "v=1;2");
	cr_assert(g.i[0].has_snap);
	cr_expect_eq(g.i[0].snap_input, 2);
	cr_expect_eq(g.i[0].snap_tick, 40);
	cr_expect_arr_eq(g.i[0].snap_hash, h2, 32);
	cr_expect_str_eq(g.i[0].snap_blob, "SNAP-2");
	cr_expect_eq(g.i[0].first_input, 2, "inputs 0 and 1 are covered by the snapshot");
	cr_expect_eq(g.i[0].n_inputs, 3);
	cr_expect(g.i[0].inputs_ok);
	cr_assert_eq(g.i[0].n_dead, 1);
	cr_expect_eq(g.i[0].dead0.input, 3);
	cr_expect_eq(g.i[0].dead0.tick, 77);
	cr_expect_eq(g.i[0].dead0.code, 8);
	cr_expect_str_eq(g.i[0].dead0_kind, "event");
	cr_expect_str_eq(g.i[0].dead0_name, "OnHit");
	cr_expect_str_eq(g.i[0].dead0_msg, "worker crashed twice");
	cr_expect_str_eq(g.i[1].id, "inst-b");
	cr_expect_eq(g.i[1].seed, 7);
	cr_expect_eq(g.i[1].status, 2);
	cr_expect_str_eq(g.i[1].reason, "more than 5 worker restarts");
	cr_expect_eq(g.i[1].n_labels, 0);
	cr_expect_not(g.i[1].has_snap);
	cr_expect_eq(g.i[1].n_inputs, 1);
	cr_expect_eq(g.i[1].first_input, 0);
	cr_expect_eq(sst_note_pack(st, "dungeon", "1.2.0", h2), -EEXIST, "the first is kept");
	sst_close(st);
	cr_expect_eq(count("SELECT count(*) FROM packs WHERE id = 'dungeon' AND first_seen > 0"),
		     1);
}

Test(store, refusals_name_their_cause)
{
	sst *st = open_store("process", 4);
	uint8_t h[32] = {0};
	char long_id[200];
	sst_stats s;

	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	put_inst(st, "a");
	cr_expect_eq(sst_set_status(st, "nobody", 2, "x"), -ENOENT);
	cr_expect_eq(append(st, "nobody", 0), -ENOENT, "inputs belong to an instance");
	cr_expect_eq(sst_put_snapshot(st, "nobody", 0, 0, h, h, 1), -ENOENT);
	cr_expect_eq(append(st, "a", 0), 0);
	cr_expect_eq(append(st, "a", 0), -EEXIST, "an index is stored once");
	cr_expect_eq(append(st, "", 0), -EINVAL);
	cr_expect_eq(append(st, long_id, 0), -EINVAL);
	cr_expect_eq(sst_append_input(st, "a", UINT64_MAX, h, 1), -EINVAL);
	sst_get_stats(st, &s);
	cr_expect_eq(s.failures, 4, "unknown x3, duplicate");
	cr_expect_eq(s.requests, 6);
	sst_close(st);
}

Test(store, drop_and_reset)
{
	uint8_t h[32] = {0};
	sst_dead_letter d = {.kind = "tick", .name = "", .message = "m"};
	sst_instance a = inst_row("a");
	struct got g;
	sst *st = open_store("process", 4);

	a.created_ms = 5;
	cr_assert_eq(sst_put_instance(st, &a, 0), 0);
	put_inst(st, "b");
	for (uint64_t i = 0; i < 4; i++) {
		cr_assert_eq(append(st, "a", i), 0);
		cr_assert_eq(append(st, "b", i), 0);
	}
	cr_assert_eq(sst_put_snapshot(st, "a", 1, 1, h, h, 32), 0);
	cr_assert_eq(sst_put_dead_letter(st, "a", &d), 0);
	a.created_ms = 99;
	a.status = 2;
	cr_assert_eq(sst_put_instance(st, &a, 0), 0, "update keeps the children");
	load(st, &g);
	cr_expect_eq(g.i[0].created, 5, "created is kept on update");
	cr_expect_eq(g.i[0].status, 2);
	cr_expect_eq(g.i[0].n_inputs, 3);
	cr_assert_eq(sst_put_instance(st, &a, SST_RESET_LOG), 0, "reset (RestoreInstance)");
	cr_assert_eq(sst_drop_instance(st, "b"), 0);
	cr_assert_eq(sst_drop_instance(st, "b"), 0, "dropping twice is fine");
	cr_expect_eq(count("SELECT count(*) FROM instances"), 1);
	cr_expect_eq(count("SELECT count(*) FROM inputs"), 0);
	cr_expect_eq(count("SELECT count(*) FROM snapshots"), 0);
	cr_expect_eq(count("SELECT count(*) FROM dead_letters"), 1, "a log reset keeps them");
	cr_assert_eq(sst_put_instance(st, &a, SST_RESET_ALL), 0, "reset (a create)");
	sst_close(st);
	cr_expect_eq(count("SELECT count(*) FROM instances"), 1);
	cr_expect_eq(count("SELECT count(*) FROM dead_letters"), 0, "a full reset drops them");
}

/* ---- snapshots and truncation ---------------------------------------------------------------- */

Test(store, snapshots_trim_inputs_and_keep_k)
{
	uint8_t h[32];
	struct got g;
	char blob[16];
	sst *st = open_store("process", 3);

	put_inst(st, "a");
	for (uint64_t i = 0; i < 55; i++) {
		cr_assert_eq(append(st, "a", i), 0);
		if ((i + 1) % 10 == 0) { /* snapshots covering 10, 20, ... 50 inputs */
			hash_of(i + 1, h);
			snprintf(blob, sizeof blob, "S%llu", (unsigned long long)(i + 1));
			cr_assert_eq(sst_put_snapshot(st, "a", i + 1, (i + 1) * 10, h,
						      (const uint8_t *)blob, strlen(blob)),
				     0);
			cr_expect_eq(count("SELECT count(*) FROM inputs"), 0,
				     "the snapshot covers every input so far");
		}
	}
	cr_expect_eq(count("SELECT count(*) FROM snapshots"), 3, "keep K = 3");
	cr_expect_eq(count("SELECT min(input) FROM snapshots"), 30, "the newest three");
	cr_expect_eq(count("SELECT count(*) FROM inputs"), 5);
	cr_expect_eq(count("SELECT count(*) FROM snapshots WHERE input = 40 AND tick = 400 AND "
			   "blob = CAST('S40' AS BLOB)"),
		     1);
	cr_expect_eq(count("SELECT count(*) FROM snapshots WHERE input < 30"), 0, "trimmed away");
	hash_of(999, h);
	cr_assert_eq(sst_put_snapshot(st, "a", 50, 500, h, (const uint8_t *)"again", 5), 0);
	cr_expect_eq(count("SELECT count(*) FROM snapshots"), 3, "same index: replaced");
	load(st, &g);
	cr_expect_str_eq(g.i[0].snap_blob, "again");
	cr_expect_eq(g.i[0].first_input, 50);
	cr_expect_eq(g.i[0].n_inputs, 5);
	cr_expect(g.i[0].inputs_ok);
	sst_close(st);
}

Test(store, truncate_drops_the_tail_and_later_snapshots)
{
	uint8_t h[32] = {0};
	struct got g;
	sst *st = open_store("process", 4);

	put_inst(st, "a");
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(append(st, "a", i), 0);
	cr_assert_eq(sst_truncate(st, "a", 6), 0);
	load(st, &g);
	cr_expect_eq(g.i[0].n_inputs, 6);
	cr_assert_eq(append(st, "a", 6), 0, "the index is free again");
	cr_assert_eq(sst_put_snapshot(st, "a", 3, 3, h, h, 1), 0);
	cr_assert_eq(sst_put_snapshot(st, "a", 7, 7, h, h, 1), 0);
	cr_assert_eq(sst_truncate(st, "a", 3), 0, "a rollback to the snapshot at 3");
	load(st, &g);
	cr_expect_eq(g.i[0].snap_input, 3);
	cr_expect_eq(g.i[0].n_inputs, 0);
	sst_close(st);
}

Test(store, load_refuses_a_gap_and_stops_on_visitor_error)
{
	char err[512] = "";
	struct got g;
	sst *st = open_store("process", 4);

	put_inst(st, "gap");
	for (uint64_t i = 0; i < 4; i++)
		cr_assert_eq(append(st, "gap", i), 0);
	raw_exec("DELETE FROM inputs WHERE idx = 2");
	cr_expect_eq(sst_load(st, visit, &g, err, sizeof err), -EBADMSG);
	cr_expect_str_eq(err, "instance 'gap': input 2 missing");
	raw_exec("UPDATE instances SET seed = 'x'");
	cr_expect_eq(sst_load(st, visit, &g, err, sizeof err), -EBADMSG);
	cr_expect_str_eq(err, "instance 'gap': malformed row");
	sst_close(st);
}

/* What sst_load hands over of one instance's older snapshots and history. */
struct hist {
	size_t n_older, n_history, n_inputs;
	uint64_t older_input[4], older_tick[4], hist_first, input_first;
	char older_blob[4][16];
	int contiguous; /* history then inputs: consecutive indices, the appended bytes */
};

static int hist_visit(void *ud, const sst_loaded *l)
{
	struct hist *h = ud;
	uint64_t want = l->n_history ? l->history[0].index : l->n_inputs ? l->inputs[0].index : 0;

	memset(h, 0, sizeof *h);
	h->n_older = l->n_older;
	h->n_history = l->n_history;
	h->n_inputs = l->n_inputs;
	for (size_t k = 0; k < l->n_older && k < 4; k++) {
		h->older_input[k] = l->older[k].input;
		h->older_tick[k] = l->older[k].tick;
		snprintf(h->older_blob[k], 16, "%.*s", (int)l->older[k].len,
			 (const char *)l->older[k].blob);
	}
	h->hist_first = l->n_history ? l->history[0].index : UINT64_MAX;
	h->input_first = l->n_inputs ? l->inputs[0].index : UINT64_MAX;
	h->contiguous = l->n_history == 0 || l->history + l->n_history == l->inputs;
	for (size_t j = 0; j < l->n_history + l->n_inputs; j++, want++) {
		const sst_input *e =
		    j < l->n_history ? &l->history[j] : &l->inputs[j - l->n_history];
		char b[96];
		size_t n = input_bytes(l->inst.id, e->index, b, sizeof b);
		if (e->index != want || e->len != n || memcmp(e->data, b, n) != 0)
			h->contiguous = 0;
	}
	return 0;
}

static void load_hist(sst *st, struct hist *h, int want)
{
	char err[512] = "";

	cr_assert_eq(sst_load(st, hist_visit, h, err, sizeof err), want, "%s", err);
}

/* With history on, sst_load hands over every kept snapshot and the inputs
 * since the oldest; older snapshots whose inputs up to the newest are not all
 * stored are left out; a gap after the newest is an error as before. */
Test(store, load_hands_over_older_snapshots_and_history)
{
	char err[512] = "", blob[16];
	uint8_t h[32];
	struct hist x;
	sst *st = open_store("process", 3);

	sst_set_history(st, 1);
	put_inst(st, "a");
	for (uint64_t i = 0; i < 30; i++) {
		cr_assert_eq(append(st, "a", i), 0);
		if ((i + 1) % 8 == 0) { /* snapshots covering 8, 16, 24 inputs */
			hash_of(i + 1, h);
			snprintf(blob, sizeof blob, "S%llu", (unsigned long long)(i + 1));
			cr_assert_eq(sst_put_snapshot(st, "a", i + 1, (i + 1) * 10, h,
						      (const uint8_t *)blob, strlen(blob)),
				     0);
		}
	}
	cr_expect_eq(count("SELECT min(idx) FROM inputs"), 8, "kept since the oldest snapshot");
	load_hist(st, &x, 0);
	cr_assert_eq(x.n_older, 2);
	cr_expect_eq(x.older_input[0], 8);
	cr_expect_eq(x.older_tick[0], 80);
	cr_expect_str_eq(x.older_blob[0], "S8");
	cr_expect_eq(x.older_input[1], 16);
	cr_expect_str_eq(x.older_blob[1], "S16");
	cr_expect_eq(x.n_history, 16, "inputs 8..23");
	cr_expect_eq(x.hist_first, 8);
	cr_expect_eq(x.n_inputs, 6, "inputs 24..29, after the newest");
	cr_expect_eq(x.input_first, 24);
	cr_expect(x.contiguous);

	raw_exec("DELETE FROM inputs WHERE idx = 10"); /* the snapshot at 8 is unusable */
	load_hist(st, &x, 0);
	cr_assert_eq(x.n_older, 1);
	cr_expect_eq(x.older_input[0], 16);
	cr_expect_eq(x.n_history, 8, "inputs 16..23");
	cr_expect_eq(x.hist_first, 16);
	cr_expect_eq(x.n_inputs, 6);
	cr_expect(x.contiguous);

	raw_exec("DELETE FROM inputs WHERE idx = 23"); /* none reaches the newest */
	load_hist(st, &x, 0);
	cr_expect_eq(x.n_older, 0);
	cr_expect_eq(x.n_history, 0);
	cr_expect_eq(x.n_inputs, 6);
	cr_expect_eq(x.input_first, 24);
	cr_expect(x.contiguous);

	raw_exec("DELETE FROM inputs WHERE idx = 26");
	cr_expect_eq(sst_load(st, hist_visit, &x, err, sizeof err), -EBADMSG);
	cr_expect_str_eq(err, "instance 'a': input 26 missing");
	sst_close(st);
}

/* History off (the default): the older snapshots stay, their inputs do not,
 * so sst_load hands over the newest only. */
Test(store, load_without_history_hands_over_the_newest_only)
{
	uint8_t h[32] = {0};
	struct hist x;
	sst *st = open_store("process", 3);

	put_inst(st, "a");
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(append(st, "a", i), 0);
		if (i % 3 == 2)
			cr_assert_eq(sst_put_snapshot(st, "a", i + 1, i + 1, h, h, 1), 0);
	}
	cr_expect_eq(count("SELECT count(*) FROM snapshots"), 3);
	load_hist(st, &x, 0);
	cr_expect_eq(x.n_older, 0);
	cr_expect_eq(x.n_history, 0);
	cr_expect_eq(x.n_inputs, 1);
	cr_expect_eq(x.input_first, 9);
	cr_expect(x.contiguous);
	sst_close(st);
}

static int stop_visit(void *ud, const sst_loaded *l)
{
	(void)l;
	++*(int *)ud;
	return -ECANCELED;
}

Test(store, visitor_error_stops_the_load)
{
	char err[64] = "";
	int n = 0;
	sst *st = open_store("process", 4);

	put_inst(st, "a");
	put_inst(st, "b");
	cr_expect_eq(sst_load(st, stop_visit, &n, err, sizeof err), -ECANCELED);
	cr_expect_eq(n, 1);
	sst_close(st);
}

/* ---- grouped commits and concurrency ----------------------------------------------------------
 */

struct appender {
	sst *st;
	char id[16];
	int from, n;
	int fails;
};

static void *append_main(void *arg)
{
	struct appender *a = arg;

	for (int i = a->from; i < a->from + a->n; i++)
		a->fails += append(a->st, a->id, (uint64_t)i) != 0;
	return NULL;
}

/* Waits until pending and queued are as wanted (bounded: 10 s). */
static void wait_queue(sst *st, uint64_t pending, uint64_t queued)
{
	struct timespec ms = {0, 1000000};
	sst_stats s;

	for (int i = 0; i < 10000; i++) {
		sst_get_stats(st, &s);
		if (s.pending == pending && s.queued == queued)
			return;
		nanosleep(&ms, NULL);
	}
	cr_assert_fail("pending %llu queued %llu", (unsigned long long)s.pending,
		       (unsigned long long)s.queued);
}

/* The writer is held in BEGIN by another connection's write lock with the
 * first append while seven more queue; once the lock goes, the seven commit
 * in one transaction: exactly two commits for eight appends. */
Test(store, grouped_commit_groups)
{
	struct appender a[8];
	pthread_t t[8];
	sqlite3 *db = NULL;
	sst_stats s0, s1;
	struct got g;
	sst *st = open_store("power", 4);

	put_inst(st, "g");
	sst_get_stats(st, &s0);
	cr_assert_eq(sqlite3_open(db_path(), &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 8; i++) {
		a[i] = (struct appender){.st = st, .from = i, .n = 1};
		snprintf(a[i].id, sizeof a[i].id, "g");
		if (i == 1) /* the writer has taken the first and waits for the lock */
			wait_queue(st, 1, 0);
		cr_assert_eq(pthread_create(&t[i], NULL, append_main, &a[i]), 0);
	}
	wait_queue(st, 8, 7);
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].fails, 0);
	}
	sst_get_stats(st, &s1);
	cr_expect_eq(s1.appends - s0.appends, 8);
	cr_expect_eq(s1.commits - s0.commits, 2, "eight appends, two transactions, not %llu",
		     (unsigned long long)(s1.commits - s0.commits));
	cr_expect_eq(s1.max_group, 7);
	load(st, &g);
	cr_expect_eq(g.i[0].n_inputs, 8);
	cr_expect(g.i[0].inputs_ok);
	sst_close(st);
}

Test(store, eight_threads_append_concurrently)
{
	struct appender a[8];
	pthread_t t[8];
	sst_stats s;
	struct got g;
	sst *st = open_store("process", 4);

	for (int i = 0; i < 8; i++) {
		a[i] = (struct appender){.st = st, .from = 0, .n = 300};
		snprintf(a[i].id, sizeof a[i].id, "c%d", i);
		put_inst(st, a[i].id);
	}
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, append_main, &a[i]), 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].fails, 0);
	}
	sst_get_stats(st, &s);
	cr_expect_eq(s.appends, 2400);
	cr_expect_eq(s.failures, 0);
	cr_expect_leq(s.commits, s.requests);
	cr_expect_eq(s.pending, 0);
	sst_close(st);
	st = open_store("process", 4);
	load(st, &g);
	cr_assert_eq(g.n, 8);
	for (int i = 0; i < 8; i++) {
		cr_expect_eq(g.i[i].n_inputs, 300, "%s", g.i[i].id);
		cr_expect_eq(g.i[i].first_input, 0);
		cr_expect(g.i[i].inputs_ok, "%s: every input, in order", g.i[i].id);
	}
	sst_close(st);
}

/* ---- crash safety -----------------------------------------------------------------------------
 */

#define CRASH_THREADS 4
#define CRASH_SNAP_EVERY 25
#define CRASH_MAX 100000

struct ack {
	uint32_t thread, index;
};

struct crasher {
	sst *st;
	int fd; /* the pipe to the parent */
	int thread;
	atomic_uint *acked;
};

static void snap_blob(const char *id, uint64_t input, char *b, size_t n)
{
	snprintf(b, n, "snapshot %s @%llu", id, (unsigned long long)input);
}

/* In the child: appends until killed; reports every acknowledged input, and
 * takes a snapshot every CRASH_SNAP_EVERY inputs (inputs it covers go). */
static void *crash_main(void *arg)
{
	struct crasher *c = arg;
	char id[16], blob[64];
	uint8_t h[32];

	snprintf(id, sizeof id, "k%d", c->thread);
	for (uint32_t i = 0; i < CRASH_MAX; i++) {
		struct ack a = {(uint32_t)c->thread, i};
		if (append(c->st, id, i) != 0)
			_exit(10);
		if (write(c->fd, &a, sizeof a) != sizeof a)
			_exit(11);
		atomic_fetch_add(c->acked, 1);
		if ((i + 1) % CRASH_SNAP_EVERY == 0) {
			hash_of(i + 1, h);
			snap_blob(id, i + 1, blob, sizeof blob);
			if (sst_put_snapshot(c->st, id, i + 1, i + 1, h, (const uint8_t *)blob,
					     strlen(blob)) != 0)
				_exit(12);
		}
	}
	_exit(0);
}

/* The child: exits by itself after exit_after acknowledged inputs when
 * exit_after > 0, else runs until the parent kills it. */
static void crash_child(const char *mode, int fd, unsigned exit_after)
{
	struct crasher c[CRASH_THREADS];
	pthread_t t[CRASH_THREADS];
	atomic_uint acked = 0;
	char err[512];
	struct timespec us = {0, 100000};
	sst *st = NULL;

	if (sst_open(tmp, mode, 1, 2, &st, err, sizeof err) != 0)
		_exit(20);
	for (int i = 0; i < CRASH_THREADS; i++) {
		char id[16];
		sst_instance in;
		snprintf(id, sizeof id, "k%d", i);
		in = inst_row(id);
		if (sst_put_instance(st, &in, 0) != 0)
			_exit(21);
		c[i] = (struct crasher){.st = st, .fd = fd, .thread = i, .acked = &acked};
	}
	for (int i = 0; i < CRASH_THREADS; i++)
		if (pthread_create(&t[i], NULL, crash_main, &c[i]) != 0)
			_exit(22);
	while (exit_after == 0 || atomic_load(&acked) < exit_after)
		nanosleep(&us, NULL);
	_exit(3); /* in the middle of other threads' commits */
}

struct crash_check {
	uint32_t acked[CRASH_THREADS]; /* highest acknowledged index + 1 */
	int visited;
};

static int crash_visit(void *ud, const sst_loaded *l)
{
	struct crash_check *cc = ud;
	int k = l->inst.id[1] - '0';
	uint64_t covered = l->snap ? l->snap->input : 0;
	uint64_t end = covered + l->n_inputs;
	char blob[64];

	cr_assert(k >= 0 && k < CRASH_THREADS);
	cc->visited++;
	if (l->snap) {
		snap_blob(l->inst.id, l->snap->input, blob, sizeof blob);
		cr_expect_eq(l->snap->len, strlen(blob));
		cr_expect_arr_eq(l->snap->blob, blob, strlen(blob), "%s", l->inst.id);
		cr_expect_eq(l->snap->input % CRASH_SNAP_EVERY, 0);
	}
	cr_expect_geq(end, cc->acked[k], "%s: acknowledged up to %u, stored up to %llu", l->inst.id,
		      cc->acked[k], (unsigned long long)end);
	cr_expect_leq(end, cc->acked[k] + 1, "%s: at most the one in flight beyond", l->inst.id);
	for (size_t j = 0; j < l->n_inputs; j++) {
		char b[96];
		size_t n = input_bytes(l->inst.id, covered + j, b, sizeof b);
		/* sst_load checked: contiguous from the snapshot, so none twice */
		cr_expect_eq(l->inputs[j].index, covered + j);
		cr_expect(l->inputs[j].len == n && memcmp(l->inputs[j].data, b, n) == 0);
	}
	return 0;
}

/* Forks a child that appends from four threads; kills it (SIGKILL after
 * kill_after acknowledgements) or lets it _exit (exit_after); then checks
 * every acknowledged input is in the store, in order, none twice. */
static void crash_round(const char *mode, unsigned kill_after, unsigned exit_after)
{
	struct crash_check cc = {0};
	struct ack a;
	unsigned seen = 0;
	char err[512] = "";
	int p[2], status;
	pid_t pid;
	sst *st;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		crash_child(mode, p[1], exit_after);
	}
	close(p[1]);
	while (read(p[0], &a, sizeof a) == sizeof a) {
		cr_assert_lt(a.thread, CRASH_THREADS);
		cr_assert_eq(a.index, cc.acked[a.thread], "acks come in order");
		cc.acked[a.thread] = a.index + 1;
		if (++seen == kill_after)
			kill(pid, SIGKILL);
	}
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (exit_after)
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3, "status %d", status);
	else
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
	cr_assert_geq(seen, exit_after ? exit_after : kill_after);
	cr_assert_eq(sst_open(tmp, mode, 1, 2, &st, err, sizeof err), 0, "%s", err);
	cr_assert_eq(sst_load(st, crash_visit, &cc, err, sizeof err), 0, "%s", err);
	cr_expect_eq(cc.visited, CRASH_THREADS, "every instance is back");
	sst_close(st);
}

static unsigned rnd(unsigned lo, unsigned hi)
{
	static int seeded;

	if (!seeded) {
		unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
		srand(seed);
		cr_log_info("crash seed %u", seed);
		seeded = 1;
	}
	return lo + (unsigned)rand() % (hi - lo + 1);
}

Test(store, crash_sigkill_loses_no_acknowledged_input, .timeout = 120)
{
	for (int round = 0; round < 4; round++) {
		crash_round("process", rnd(1, 600), 0);
		rm_tmp();
		cr_assert_eq(mkdir(tmp, 0700), 0);
	}
}

Test(store, crash_exit_loses_no_acknowledged_input, .timeout = 120)
{
	crash_round("process", 0, rnd(1, 600));
}

Test(store, crash_power_mode, .timeout = 120)
{
	crash_round("power", rnd(1, 200), 0);
}

/* ---- foreign, corrupt, newer ----------------------------------------------------------------- */

static void expect_open_error(int want, const char *want_err)
{
	char err[512] = "", full[600];
	sst *st = NULL;

	snprintf(full, sizeof full, "%s/" SST_DB_NAME ": %s", tmp, want_err);
	cr_expect_eq(sst_open(tmp, "process", 2, 4, &st, err, sizeof err), want, "%s", err);
	cr_expect_null(st);
	cr_expect_str_eq(err, full);
}

static void write_file(const char *path, const void *p, size_t n, off_t at)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, p, n, at), (ssize_t)n);
	close(fd);
}

Test(store, not_a_database)
{
	char junk[8192];

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 7 + 3);
	write_file(db_path(), junk, sizeof junk, 0);
	expect_open_error(-EBADMSG, "not a moonpen store: file is not a database");
}

Test(store, a_foreign_sqlite_database)
{
	raw_exec("CREATE TABLE users(name TEXT)");
	expect_open_error(-EBADMSG, "not a moonpen store (a SQLite database of another "
				    "application, application_id 0)");
}

Test(store, a_newer_schema)
{
	sst *st = open_store("process", 4);

	sst_close(st);
	raw_exec("PRAGMA user_version = 3");
	expect_open_error(-EBADMSG, "store schema version 3, this moonpend knows 2");
	raw_exec("PRAGMA user_version = 99");
	expect_open_error(-EBADMSG, "store schema version 99, this moonpend knows 2");
	cr_expect_eq(count("PRAGMA user_version"), 99, "a refused file is left as it was");
}

Test(store, corrupt_pages)
{
	char junk[4096];
	char err[512] = "";
	struct stat sb;
	sst *st = open_store("process", 4);

	put_inst(st, "a");
	for (uint64_t i = 0; i < 200; i++)
		cr_assert_eq(append(st, "a", i), 0);
	sst_close(st); /* checkpoints the WAL into the file */
	cr_assert_eq(stat(db_path(), &sb), 0);
	cr_assert_geq(sb.st_size, 4 * 4096);
	memset(junk, 0xa5, sizeof junk);
	for (off_t pg = 1; pg * 4096 < sb.st_size; pg++) /* every page but the header's */
		write_file(db_path(), junk, sizeof junk, pg * 4096);
	cr_expect_eq(sst_open(tmp, "process", 2, 4, &st, err, sizeof err), -EBADMSG);
	cr_expect_null(st);
	cr_expect(strstr(err, ": corrupt store: ") != NULL, "%s", err);
}

/* ---- incidents (the flight recorder) and the version 1 migration --------------------------- */

/* What sst_load found of one instance's incident. */
struct inc {
	int n;
	char id[4][16];
	char *text[4]; /* malloc'd copies (NULL: none) */
	size_t len[4];
	int code[4];
	int64_t ms[4];
};

static int inc_visit(void *ud, const sst_loaded *l)
{
	struct inc *g = ud;
	int k = g->n++;

	cr_assert_lt(k, 4);
	snprintf(g->id[k], sizeof g->id[k], "%s", l->inst.id);
	g->len[k] = l->incident_len;
	g->code[k] = l->incident_code;
	g->ms[k] = l->incident_ms;
	if (l->incident) {
		cr_assert_eq(l->incident[l->incident_len], '\0', "NUL-terminated");
		g->text[k] = malloc(l->incident_len + 1);
		cr_assert_not_null(g->text[k]);
		memcpy(g->text[k], l->incident, l->incident_len + 1);
	}
	return 0;
}

static void inc_load(sst *st, struct inc *g)
{
	char err[512] = "";

	memset(g, 0, sizeof *g);
	cr_assert_eq(sst_load(st, inc_visit, g, err, sizeof err), 0, "%s", err);
}

static void inc_free(struct inc *g)
{
	for (int k = 0; k < g->n; k++)
		free(g->text[k]);
	g->n = 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char trace1[] = "{\"format\":1,\"inputs\":[{\"name\":\"backtrack\",\"killed\":true}]}";
static const char trace2[] = "{\"format\":1,\"inputs\":[]}\n";

Test(store, incident_round_trip)
{
	sst *st = open_store("process", 4);
	struct inc g;
	int64_t t0 = now_ms(), t1;

	put_inst(st, "a");
	put_inst(st, "b");
	cr_assert_eq(sst_put_incident(st, "a", 4, trace1, strlen(trace1)), 0);
	t1 = now_ms();
	inc_load(st, &g);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.id[0], "a");
	cr_assert_not_null(g.text[0]);
	cr_expect_eq(g.len[0], strlen(trace1));
	cr_expect_arr_eq(g.text[0], trace1, strlen(trace1), "byte-equal");
	cr_expect_eq(g.code[0], 4);
	cr_expect(g.ms[0] >= t0 && g.ms[0] <= t1, "stored at %lld", (long long)g.ms[0]);
	cr_expect_null(g.text[1], "b has no incident");
	cr_expect_eq(g.len[1], 0);
	cr_expect_eq(g.code[1], 0);
	inc_free(&g);
	sst_close(st);
}

Test(store, incident_replace_keeps_the_newest)
{
	sst *st = open_store("process", 4);
	struct inc g;

	put_inst(st, "a");
	cr_assert_eq(sst_put_incident(st, "a", 4, trace1, strlen(trace1)), 0);
	cr_assert_eq(sst_put_incident(st, "a", 12, trace2, strlen(trace2)), 0);
	cr_expect_eq(count("SELECT count(*) FROM incidents"), 1);
	inc_load(st, &g);
	cr_assert_eq(g.n, 1);
	cr_assert_not_null(g.text[0]);
	cr_expect_eq(g.len[0], strlen(trace2));
	cr_expect_str_eq(g.text[0], trace2);
	cr_expect_eq(g.code[0], 12);
	inc_free(&g);
	sst_close(st);
}

Test(store, incident_kept_by_a_log_reset_dropped_with_the_instance)
{
	sst *st = open_store("process", 4);
	sst_instance a = inst_row("a");
	struct inc g;

	put_inst(st, "a");
	put_inst(st, "b");
	cr_assert_eq(append(st, "a", 0), 0);
	cr_assert_eq(sst_put_incident(st, "a", 4, trace1, strlen(trace1)), 0);
	cr_assert_eq(sst_put_incident(st, "b", 5, trace2, strlen(trace2)), 0);
	cr_expect_eq(sst_put_instance(st, &a, 3), -EINVAL, "no such reset");
	cr_assert_eq(sst_put_instance(st, &a, SST_RESET_LOG), 0, "reset (RestoreInstance)");
	cr_expect_eq(count("SELECT count(*) FROM inputs"), 0, "the reset happened");
	inc_load(st, &g);
	cr_assert_eq(g.n, 2);
	cr_assert_not_null(g.text[0], "a reset keeps the incident");
	cr_expect_str_eq(g.text[0], trace1);
	cr_expect_eq(g.code[0], 4);
	inc_free(&g);
	cr_assert_eq(sst_drop_instance(st, "b"), 0);
	cr_expect_eq(count("SELECT count(*) FROM incidents WHERE instance = 'b'"), 0);
	cr_expect_eq(count("SELECT count(*) FROM incidents"), 1);
	inc_load(st, &g);
	cr_assert_eq(g.n, 1);
	cr_expect_str_eq(g.id[0], "a");
	inc_free(&g);
	cr_assert_eq(sst_put_instance(st, &a, SST_RESET_ALL), 0, "a create over a stored id");
	cr_expect_eq(count("SELECT count(*) FROM incidents"), 0, "a full reset drops it");
	cr_expect_eq(count("SELECT count(*) FROM instances WHERE id = 'a'"), 1);
	sst_close(st);
}

Test(store, incident_refusals)
{
	sst *st = open_store("process", 4);
	sst_stats s;

	put_inst(st, "a");
	cr_expect_eq(sst_put_incident(st, "nobody", 4, trace1, strlen(trace1)), -ENOENT);
	cr_expect_eq(sst_put_incident(st, "", 4, trace1, strlen(trace1)), -EINVAL);
	cr_expect_eq(sst_put_incident(st, "a", 4, trace1, 0), -EINVAL, "empty");
	cr_expect_eq(sst_put_incident(st, "a", 4, NULL, 3), -EINVAL);
	cr_expect_eq(sst_put_incident(st, "a", 4, "{\0}", 3), -EINVAL, "a NUL inside");
	/* refused on its length alone: the text is not read */
	cr_expect_eq(sst_put_incident(st, "a", 4, trace1, (256u << 20) + 1), -E2BIG);
	sst_get_stats(st, &s);
	cr_expect_eq(s.requests, 2, "put instance, the unknown id");
	cr_expect_eq(s.failures, 1);
	cr_expect_eq(count("SELECT count(*) FROM incidents"), 0);
	sst_close(st);
}

/* A malformed incident row stops sst_load with -EBADMSG naming the instance. */
static void expect_bad_incident(sst *st, const char *update)
{
	char err[512] = "";
	struct inc g = {0};

	cr_assert_eq(sst_put_incident(st, "a", 4, trace1, strlen(trace1)), 0);
	raw_exec(update);
	cr_expect_eq(sst_load(st, inc_visit, &g, err, sizeof err), -EBADMSG, "%s", update);
	cr_expect_str_eq(err, "instance 'a': malformed incident row", "%s", update);
	inc_free(&g);
}

Test(store, load_refuses_a_malformed_incident)
{
	sst *st = open_store("process", 4);

	put_inst(st, "a");
	expect_bad_incident(st, "UPDATE incidents SET code = 'x'");
	expect_bad_incident(st, "UPDATE incidents SET code = 4294967296");
	expect_bad_incident(st, "UPDATE incidents SET at = 1.5");
	expect_bad_incident(st, "UPDATE incidents SET trace = 123");
	expect_bad_incident(st, "UPDATE incidents SET trace = 'text, not a blob'");
	expect_bad_incident(st, "UPDATE incidents SET trace = X''");
	expect_bad_incident(st, "UPDATE incidents SET trace = X'7b007d'");
	sst_close(st);
}

Test(store, a_version_1_file_is_migrated)
{
	sst *st = open_store("process", 4);
	struct got g;

	put_inst(st, "a");
	put_inst(st, "b");
	for (uint64_t i = 0; i < 3; i++)
		cr_assert_eq(append(st, "a", i), 0);
	sst_close(st);
	/* the previous release's file: no incidents table, version 1 */
	raw_exec("DROP TABLE incidents; PRAGMA user_version = 1");
	cr_assert_eq(count("PRAGMA user_version"), 1);
	st = open_store("process", 4);
	cr_expect_eq(count("PRAGMA user_version"), 2);
	cr_expect_eq(count("SELECT count(*) FROM sqlite_master WHERE name = 'incidents'"), 1);
	load(st, &g);
	cr_assert_eq(g.n, 2, "the instances are kept");
	cr_expect_str_eq(g.i[0].id, "a");
	cr_expect_eq(g.i[0].n_inputs, 3);
	cr_expect(g.i[0].inputs_ok);
	cr_expect_str_eq(g.i[1].id, "b");
	cr_expect_eq(sst_put_incident(st, "a", 4, trace1, strlen(trace1)), 0);
	cr_expect_eq(sst_drop_instance(st, "a"), 0);
	cr_expect_eq(count("SELECT count(*) FROM incidents"), 0, "the migrated table cascades");
	sst_close(st);
	st = open_store("process", 4); /* version 2 now: opens as it is */
	sst_close(st);
	cr_expect_eq(count("PRAGMA user_version"), 2);
}
