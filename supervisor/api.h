/*
 * api — the game servers' REQ/REP endpoint of moonpend. Runs in the
 * supervisor; every request is hostile until checked: the size is capped at the
 * transport and again by the API limit, the bytes are decoded and checked by
 * protobuf-c, then every field is checked for meaning (ids, names, counts,
 * Value depth). A request that fails any check is answered INVALID_ARGUMENT
 * with the reason; the supervisor keeps serving.
 *
 * Requests are served concurrently through NNG contexts; a request for an
 * instance is queued on that instance (sup_insts), which answers it later
 * through sup_api_reply().
 */
#ifndef MOONPEN_SUP_API_H
#define MOONPEN_SUP_API_H

#include "common/status.h"
#include "moonpen.pb-c.h"
#include "supervisor/sup.h"

typedef struct sup_api sup_api;
typedef struct sup_reply sup_reply; /* one request in flight */

/* Listens on s->cfg.listen with s->cfg.api_contexts contexts. 0, or negative
 * with err filled. */
int sup_api_start(sup *s, sup_api **out, char *err, unsigned long errlen)
    __attribute__((warn_unused_result));
/* Closes the socket and frees the contexts. Call after every instance thread
 * has answered (sup_insts_shutdown), so no reply is pending. */
void sup_api_stop(sup_api *a);

/* Answers the request behind r with resp (resp->id is set here). Takes
 * ownership of resp, which must be wholly heap-allocated. Any thread. */
void sup_api_reply(sup_reply *r, Moonpen__V1__Response *resp);

/* A new heap Response with a status (message formatted), or NULL when out of
 * memory. */
Moonpen__V1__Response *sup_resp_new(st_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Shorthand: answer r with an error status. */
void sup_api_fail(sup_reply *r, st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
