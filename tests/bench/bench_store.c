/*
 * The durable store: acknowledged appends per second with 1, 8 and 64
 * concurrent appenders for durability "process" (WAL, synchronous=NORMAL) and
 * "power" (fsync per commit group), next to "memory" (a plain mutex-guarded
 * append to an in-memory array: the baseline, measured in the same run); then
 * the time to open and load a store of 1,000 instances, each with a 10 KB
 * snapshot and 50 inputs. Prints figures, asserts nothing. Test process only.
 *
 *   make bench   (or: build/bench/bench_store [seconds per case [group_commit_ms]])
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/store.h"

#define INPUT_BYTES 96 /* about a packed ToWorker event with a small payload */
#define LOAD_INSTANCES 1000
#define LOAD_INPUTS 50
#define LOAD_SNAPSHOT_BYTES 10240

static uint32_t group_ms = 2; /* MP_GROUP_COMMIT_MS; argv[2] */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, strerror(-r));
	exit(1);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static sst *open_fresh(char *dir, size_t n, const char *mode)
{
	char err[512];
	sst *st = NULL;
	int r;

	snprintf(dir, n, "/tmp/mp-bench-store-XXXXXX"); /* on disk, not tmpfs, here */
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", -errno);
	r = sst_open(dir, mode, group_ms, 4, &st, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	return st;
}

/* ---- the in-memory baseline ------------------------------------------------------------- */

struct memlog {
	pthread_mutex_t mu;
	uint8_t **v;
	size_t n, cap;
};

static int mem_append(struct memlog *m, const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len);
	int r = 0;

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, data, len);
	pthread_mutex_lock(&m->mu);
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 1024;
		uint8_t **nv = realloc(m->v, ncap * sizeof *nv);
		if (nv == NULL) {
			r = -ENOMEM;
			free(copy);
			goto out;
		}
		m->v = nv;
		m->cap = ncap;
	}
	m->v[m->n++] = copy;
out:
	pthread_mutex_unlock(&m->mu);
	return r;
}

/* ---- appenders -------------------------------------------------------------------------- */

struct run {
	sst *st; /* NULL: the memory baseline */
	struct memlog *mem;
	atomic_int stop;
	atomic_ullong acks;
};

struct appender {
	struct run *run;
	char id[16];
};

static void *append_main(void *arg)
{
	struct appender *a = arg;
	struct run *run = a->run;
	uint8_t data[INPUT_BYTES];
	uint64_t i;

	memset(data, 'e', sizeof data);
	for (i = 0; !atomic_load(&run->stop); i++) {
		int r = run->st ? sst_append_input(run->st, a->id, i, data, sizeof data)
				: mem_append(run->mem, data, sizeof data);
		if (r < 0)
			die("append", r);
		atomic_fetch_add(&run->acks, 1);
	}
	return NULL;
}

static void put_instance(sst *st, const char *id)
{
	sst_instance in = {.id = id, .pack_id = "bench", .pack_version = "1.0.0", .tick_ms = 50};
	int r = sst_put_instance(st, &in, 0);

	if (r < 0)
		die("put instance", r);
}

/* Acknowledged appends per second, nthreads appenders, each on its own
 * instance, for `secs` seconds. */
static double measure(const char *mode, int nthreads, double secs, sst_stats *stats)
{
	struct run run = {0};
	struct memlog mem = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct appender *a = calloc((size_t)nthreads, sizeof *a);
	pthread_t *t = calloc((size_t)nthreads, sizeof *t);
	char dir[64];
	double t0, el;
	int i;

	if (!a || !t)
		die("calloc", -ENOMEM);
	run.mem = &mem;
	if (strcmp(mode, "memory") != 0)
		run.st = open_fresh(dir, sizeof dir, mode);
	for (i = 0; i < nthreads; i++) {
		a[i].run = &run;
		snprintf(a[i].id, sizeof a[i].id, "b%d", i);
		if (run.st)
			put_instance(run.st, a[i].id);
	}
	t0 = now_s();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, append_main, &a[i]) != 0)
			die("pthread_create", -EAGAIN);
	while (now_s() - t0 < secs)
		usleep(10000);
	atomic_store(&run.stop, 1);
	for (i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	el = now_s() - t0;
	memset(stats, 0, sizeof *stats);
	if (run.st) {
		sst_get_stats(run.st, stats);
		sst_close(run.st);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (size_t k = 0; k < mem.n; k++)
		free(mem.v[k]);
	free(mem.v);
	free(a);
	free(t);
	return (double)atomic_load(&run.acks) / el;
}

static void bench_appends(double secs)
{
	static const char *const modes[] = {"memory", "process", "power"};
	static const int threads[] = {1, 8, 64};
	double rate[3][3];

	printf("acknowledged appends per second (%d-byte inputs, %.1f s per case, "
	       "group_commit_ms %u)\n",
	       INPUT_BYTES, secs, group_ms);
	printf("  %-8s %10s %14s %12s %10s %12s\n", "mode", "appenders", "appends/s", "x memory",
	       "commits/s", "avg group");
	for (int m = 0; m < 3; m++)
		for (int k = 0; k < 3; k++) {
			sst_stats s;
			rate[m][k] = measure(modes[m], threads[k], secs, &s);
			printf("  %-8s %10d %14.0f %12.4f", modes[m], threads[k], rate[m][k],
			       rate[m][k] / rate[0][k]);
			if (s.commits)
				printf(" %10.0f %12.1f\n", (double)s.commits / secs,
				       (double)s.requests / (double)s.commits);
			else
				printf(" %10s %12s\n", "-", "-");
		}
	printf("  power / process: 1: %.3f  8: %.3f  64: %.3f\n", rate[2][0] / rate[1][0],
	       rate[2][1] / rate[1][1], rate[2][2] / rate[1][2]);
}

/* ---- load time ---------------------------------------------------------------------------- */

struct filler {
	sst *st;
	int from, to;
};

static void *fill_main(void *arg)
{
	struct filler *f = arg;
	uint8_t snap[LOAD_SNAPSHOT_BYTES], hash[32], data[INPUT_BYTES];
	char id[24];
	int r;

	memset(snap, 's', sizeof snap);
	memset(hash, 'h', sizeof hash);
	memset(data, 'e', sizeof data);
	for (int i = f->from; i < f->to; i++) {
		snprintf(id, sizeof id, "inst-%04d", i);
		put_instance(f->st, id);
		r = sst_put_snapshot(f->st, id, 0, 0, hash, snap, sizeof snap);
		for (uint64_t k = 0; r == 0 && k < LOAD_INPUTS; k++)
			r = sst_append_input(f->st, id, k, data, sizeof data);
		if (r < 0)
			die("fill", r);
	}
	return NULL;
}

struct tally {
	unsigned instances;
	size_t inputs, bytes;
};

static int tally_visit(void *ud, const sst_loaded *l)
{
	struct tally *t = ud;

	t->instances++;
	t->inputs += l->n_inputs;
	t->bytes += l->snap ? l->snap->len : 0;
	for (size_t i = 0; i < l->n_inputs; i++)
		t->bytes += l->inputs[i].len;
	return 0;
}

static void bench_load(void)
{
	struct filler f[8];
	pthread_t t[8];
	struct tally ty = {0};
	char dir[64], err[512], path[160];
	struct stat sb;
	double t0, t_open, t_load;
	sst *st = open_fresh(dir, sizeof dir, "process");
	int r;

	for (int i = 0; i < 8; i++) {
		f[i] = (struct filler){st, i * LOAD_INSTANCES / 8, (i + 1) * LOAD_INSTANCES / 8};
		if (pthread_create(&t[i], NULL, fill_main, &f[i]) != 0)
			die("pthread_create", -EAGAIN);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	sst_close(st);
	snprintf(path, sizeof path, "%s/" SST_DB_NAME, dir);
	stat(path, &sb);
	t0 = now_s();
	r = sst_open(dir, "process", 2, 4, &st, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	t_open = now_s() - t0;
	t0 = now_s();
	r = sst_load(st, tally_visit, &ty, err, sizeof err);
	t_load = now_s() - t0;
	if (r < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	printf("load: %u instances, %zu inputs, %.1f MB read; file %.1f MB\n", ty.instances,
	       ty.inputs, (double)ty.bytes / 1e6, (double)sb.st_size / 1e6);
	printf("  open (with quick_check) %.1f ms, sst_load %.1f ms (%.1f us per instance)\n",
	       t_open * 1e3, t_load * 1e3, t_load * 1e6 / ty.instances);
	sst_close(st);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;

	if (secs <= 0)
		secs = 1.0;
	if (argc > 2)
		group_ms = (uint32_t)atoi(argv[2]);
	bench_appends(secs);
	bench_load();
	return 0;
}
