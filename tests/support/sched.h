/*
 * sched — test support: the input schedule of the "recovery" test pack
 * (tests/e2e/packs/recovery), shared by the recovery and history tests.
 */
#ifndef MOONPEN_TEST_SCHED_H
#define MOONPEN_TEST_SCHED_H

#include "client/moonpen.h"

/* Sends input i of the schedule to instance id: i % 4 == 0 a tick of 3 (timers
 * fire, drawing from the RNG), 1 the event "add" {"n": i}, 2 the event "hit"
 * (a throttled trigger), 3 the call "total". 0 and *r (the caller's to free),
 * or the client's negative error. */
int ts_input(mp_client *c, const char *id, int i, mp_response **r);

#endif
