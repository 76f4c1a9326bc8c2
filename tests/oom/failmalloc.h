/*
 * failmalloc — a failing allocator for out-of-memory tests (test processes
 * only; never linked into a program, never with ASan).
 *
 * The test binary defines malloc, calloc, realloc and free itself; they
 * delegate to glibc's __libc_* functions, and, while armed, the Nth call of
 * malloc/calloc/realloc (counted from fm_arm) returns NULL. Symbol
 * interposition makes every library of the process (protobuf-c, jansson,
 * libsodium, Lua's allocator through realloc) use them too. The counters of
 * live blocks let a test check that a failed operation released everything.
 */
#ifndef MOONPEN_TEST_FAILMALLOC_H
#define MOONPEN_TEST_FAILMALLOC_H

#include <stddef.h>

/* Starts counting: the nth allocation from now fails (n >= 1), every later
 * one too when sticky is set (a process truly out of memory), else only that
 * one. n == 0 counts without failing. */
void fm_arm(unsigned long n, int sticky);
/* Allocations made directly by a library whose file name contains lib (e.g.
 * "libjansson") are neither counted nor failed; NULL spares none. For
 * libraries with a known out-of-memory bug, so the rest can still be swept. */
void fm_spare(const char *lib);
/* Stops failing. Returns the number of allocations counted since fm_arm. */
unsigned long fm_disarm(void);
/* Nonzero when an allocation was refused since the last fm_arm. */
int fm_failed(void);
/* Blocks allocated by a tracked thread and not freed yet (by any thread).
 * The first call makes the calling thread tracked: its allocations from then
 * on are counted (other threads' never are: Criterion's own runner threads
 * allocate and free at any moment). */
long fm_live(void);
/* fm_live() once it equals expect, waiting up to 2 s for frees that another
 * thread makes late (a runner message the test thread allocated); a real leak
 * never settles and the value is returned as it is then. */
long fm_settle(long expect);

/* Runs op(ctx) with the 1st, 2nd, ... allocation failing until a run hits no
 * failure (at most max_n runs). op runs armed, so it must do nothing but the
 * operation under test (an assertion that fails would itself need memory);
 * check(ctx, r, failed) runs disarmed after each run, with op's return and
 * whether an allocation was refused: it asserts and releases. Returns the
 * number of allocations of the run that hit no failure, or 0 if max_n was
 * reached. */
unsigned long fm_sweep(int (*op)(void *ctx), void (*check)(void *ctx, int r, int failed), void *ctx,
		       unsigned long max_n, int sticky);

#endif
