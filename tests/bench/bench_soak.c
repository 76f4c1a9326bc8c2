/*
 * Durability soak (test process; trusts the daemons it starts): the crash-and-
 * compare run of tests/e2e/test_durability.c (tests/e2e/durability_run.h),
 * longer: more instances, more client threads, a SIGKILL about every 2.5 s,
 * then the comparison with a reference run. Prints kills, inputs and
 * comparisons; exits 1 when the comparison fails.
 *
 *   make bench    (or: build/bench/bench_soak [seconds [durability [seed]]])
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/e2e/durability_run.h"

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 60.0;
	dr_cfg c = {.instances = 32,
		    .threads = 8,
		    .min_run_ms = 200,
		    .max_run_ms = 1800,
		    .durability = argc > 2 ? argv[2] : "process",
		    .seed = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 4242u};
	dr_result res;
	double t0 = td_now_ms();
	int r;

	/* a phase runs 1 s on average, a restart waits DR_RECV_MS for the clients */
	c.kills = (int)(secs * 1000.0 / (1000.0 + DR_RECV_MS));
	if (c.kills < 1)
		c.kills = 1;
	r = dr_crash_run(&c, &res);
	printf("soak (%s, %d instances, %d client threads, %.0f s): %d kills, %d acknowledged "
	       "inputs, %d in flight at a kill (%d of them applied), %d inputs replayed into the "
	       "reference, %d effects and %d state hashes compared: %s\n",
	       c.durability, c.instances, c.threads, (td_now_ms() - t0) / 1000.0, res.kills,
	       res.acked, res.in_flight, res.in_flight_applied, res.inputs, res.compared_effects,
	       res.compared_hashes, r == 0 ? "all equal" : res.fail);
	return r == 0 ? 0 : 1;
}
