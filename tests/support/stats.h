/*
 * stats — test support for benchmarks (tests/bench/): latency summaries and
 * a fatal-error exit. Test processes only.
 */
#ifndef MOONPEN_TEST_STATS_H
#define MOONPEN_TEST_STATS_H

/* A latency summary (ms). */
struct stats {
	double p50, p99, max;
	int n;
};

/* Sorts lat (n samples) in place and summarizes it. p99 is lat[n * 0.99]:
 * of 20 samples, their maximum. n == 0 gives zeros. */
struct stats tst_summarize(double *lat, int n);

/* Prints "<program>: <message>" to stderr and exits 1. */
void tst_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
