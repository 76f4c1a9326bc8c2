/*
 * failmalloc — malloc/calloc/realloc/free with "fail the Nth call" (test
 * processes only). See failmalloc.h. Thread-safe: the counters are atomics.
 */
#include "tests/oom/failmalloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static atomic_ulong fail_at; /* 0: not armed */
static atomic_ulong calls;   /* allocations counted since fm_arm */
static atomic_int sticky_fail;
static atomic_int failed;
static atomic_long live;
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
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

void *calloc(size_t n, size_t m)
{
	void *p;

	if (should_fail(__builtin_return_address(0)))
		return NULL;
	p = __libc_calloc(n, m);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
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
	p = __libc_realloc(old, n);
	return p;
}

void free(void *p)
{
	if (p == NULL)
		return;
	atomic_fetch_sub(&live, 1);
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

long fm_live(void)
{
	return atomic_load(&live);
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
