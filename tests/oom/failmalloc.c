/*
 * failmalloc — malloc/calloc/realloc/free with "fail the Nth call" (test
 * processes only). See failmalloc.h. Thread-safe: the counters are atomics;
 * the set of tracked blocks (the live-block count) is under a mutex.
 *
 * Why a set and not a counter: Criterion's runner (nanomsg) has threads of
 * its own that allocate and free messages whenever they like, so a global
 * count of live blocks moved under a test by one now and then (a block
 * allocated before the test's baseline and freed during it read as "-1
 * blocks leaked"). Only blocks allocated by a tracked thread are counted, and
 * a block is uncounted when it is freed, by whichever thread.
 */
#include "tests/oom/failmalloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static atomic_ulong fail_at; /* 0: not armed */
static atomic_ulong calls;   /* allocations counted since fm_arm */
static atomic_int sticky_fail;
static atomic_int failed;
static _Thread_local int tracked_thread; /* this thread's blocks are counted */

/* The set of live tracked blocks: open addressing over block addresses
 * (0 empty, 1 deleted), its own memory from glibc directly. */
static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t *set_slot;
static size_t set_cap, set_used, set_live; /* used counts deleted slots too */

static size_t set_probe(uintptr_t p, size_t cap)
{
	return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull) & (cap - 1);
}

static void set_grow(void)
{
	size_t ncap = set_cap ? set_cap * 2 : 4096, i, j;
	uintptr_t *n = __libc_calloc(ncap, sizeof *n);

	if (n == NULL) { /* test-only code: no way to go on counting */
		fputs("failmalloc: out of memory for the block set\n", stderr);
		abort();
	}
	for (i = 0; i < set_cap; i++) {
		if (set_slot[i] <= 1)
			continue;
		for (j = set_probe(set_slot[i], ncap); n[j] != 0; j = (j + 1) & (ncap - 1))
			;
		n[j] = set_slot[i];
	}
	__libc_free(set_slot);
	set_slot = n;
	set_cap = ncap;
	set_used = set_live;
}

static void set_add(void *p)
{
	size_t i;

	pthread_mutex_lock(&set_mu);
	if ((set_used + 1) * 2 > set_cap)
		set_grow();
	for (i = set_probe((uintptr_t)p, set_cap); set_slot[i] > 1; i = (i + 1) & (set_cap - 1))
		;
	set_used += set_slot[i] == 0;
	set_slot[i] = (uintptr_t)p;
	set_live++;
	pthread_mutex_unlock(&set_mu);
}

/* Removes p; nonzero when it was there. */
static int set_del(void *p)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&set_mu);
	for (i = set_cap ? set_probe((uintptr_t)p, set_cap) : 0; set_cap && set_slot[i] != 0;
	     i = (i + 1) & (set_cap - 1))
		if (set_slot[i] == (uintptr_t)p) {
			set_slot[i] = 1;
			set_live--;
			found = 1;
			break;
		}
	pthread_mutex_unlock(&set_mu);
	return found;
}

static void *counted(void *p)
{
	if (p && tracked_thread)
		set_add(p);
	return p;
}
static const char *_Atomic spared; /* allocations from this library never fail */

/* Nonzero when the caller at pc lives in the spared library. */
static int spared_caller(const void *pc)
{
	const char *lib = atomic_load(&spared);
	Dl_info info;

	return lib != NULL && dladdr(pc, &info) != 0 && info.dli_fname != NULL &&
	       strstr(info.dli_fname, lib) != NULL;
}

/* Counts one allocation; nonzero when it must fail. */
static int should_fail(const void *pc)
{
	unsigned long at = atomic_load(&fail_at), c;

	if (at == 0 || spared_caller(pc))
		return 0;
	c = atomic_fetch_add(&calls, 1) + 1;
	if (c == at || (atomic_load(&sticky_fail) && c > at)) {
		atomic_store(&failed, 1);
		errno = ENOMEM; /* as glibc's malloc does: opendir, strdup... rely on it */
		return 1;
	}
	return 0;
}

void *malloc(size_t n)
{
	void *p;

	if (should_fail(__builtin_return_address(0)))
		return NULL;
	p = __libc_malloc(n);
	return counted(p);
}

void *calloc(size_t n, size_t m)
{
	void *p;

	if (should_fail(__builtin_return_address(0)))
		return NULL;
	p = __libc_calloc(n, m);
	return counted(p);
}

void *realloc(void *old, size_t n)
{
	void *p;

	if (old == NULL)
		return malloc(n);
	if (n == 0) {
		free(old);
		return NULL;
	}
	if (should_fail(__builtin_return_address(0)))
		return NULL;
	/* a counted block stays counted where it moves (glibc keeps old on failure) */
	if (!set_del(old))
		return __libc_realloc(old, n);
	p = __libc_realloc(old, n);
	set_add(p ? p : old);
	return p;
}

void free(void *p)
{
	if (p == NULL)
		return;
	set_del(p);
	__libc_free(p);
}

void fm_spare(const char *lib)
{
	atomic_store(&spared, lib);
}

void fm_arm(unsigned long n, int sticky)
{
	atomic_store(&fail_at, 0);
	atomic_store(&calls, 0);
	atomic_store(&failed, 0);
	atomic_store(&sticky_fail, sticky);
	atomic_store(&fail_at, n ? n : (unsigned long)-1);
}

unsigned long fm_disarm(void)
{
	atomic_store(&fail_at, 0);
	return atomic_load(&calls);
}

int fm_failed(void)
{
	return atomic_load(&failed);
}

static long set_count(void)
{
	long n;

	pthread_mutex_lock(&set_mu);
	n = (long)set_live;
	pthread_mutex_unlock(&set_mu);
	return n;
}

long fm_live(void)
{
	tracked_thread = 1;
	return set_count();
}

long fm_settle(long expect)
{
	struct timespec ms = {0, 1000000};
	long n = fm_live();

	for (int i = 0; i < 2000 && n != expect; i++) {
		nanosleep(&ms, NULL);
		n = set_count();
	}
	return n;
}

unsigned long fm_sweep(int (*op)(void *ctx), void (*check)(void *ctx, int r, int failed), void *ctx,
		       unsigned long max_n, int sticky)
{
	unsigned long n, used;
	int r, f;

	for (n = 1; n <= max_n; n++) {
		fm_arm(n, sticky);
		r = op(ctx);
		used = fm_disarm();
		f = fm_failed();
		check(ctx, r, f);
		if (!f)
			return used;
	}
	return 0;
}
