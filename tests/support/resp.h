/*
 * resp — test support: compact renderings of API responses, so tests can
 * assert exact effect sequences with one string comparison.
 */
#ifndef MOONPEN_TEST_RESP_H
#define MOONPEN_TEST_RESP_H

#include "client/moonpen.h"

/* "ui.broadcast[\"Keys: 1/3\"]\necs.spawn[\"boss_ogre\",{\"pos\":{\"x\":12,\"z\":8}}]\n":
 * one line per effect, arguments as compact JSON. Static buffer (64 KiB). */
const char *tr_effects(const mp_response *r);

/* The status code name ("ok", "timeout", ...), from st_name. */
const char *tr_code(const mp_response *r);

/* The status message, "" when absent. */
const char *tr_msg(const mp_response *r);

/* The state hash as lower-case hex ("" when absent). Static buffer. */
const char *tr_hash(const mp_response *r);

/* In a Criterion test: expects resp's status code name and its effects
 * (tr_effects format), then frees resp. */
#define TR_EXPECT(resp, code, effects)                                                             \
	do {                                                                                       \
		mp_response *r_ = (resp);                                                          \
		cr_expect_str_eq(tr_code(r_), code, "message: %s", tr_msg(r_));                    \
		cr_expect_str_eq(tr_effects(r_), effects);                                         \
		mp_response_free(r_);                                                              \
	} while (0)

#endif
