/*
 * stats — latency summaries and a fatal exit for benchmarks (test processes;
 * trusts its callers).
 */
#include "tests/support/stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stats tst_summarize(double *lat, int n)
{
	struct stats s = {0, 0, 0, n};

	if (n == 0)
		return s;
	qsort(lat, (size_t)n, sizeof *lat, cmp_d);
	s.p50 = lat[n / 2];
	s.p99 = lat[(int)(n * 0.99)];
	s.max = lat[n - 1];
	return s;
}

void tst_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}
