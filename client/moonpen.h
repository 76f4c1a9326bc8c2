/*
 * moonpen.h — libmoonpen, the C client library that game servers link to talk
 * to moonpend over its REQ/REP API socket (moonpen.v1 protobuf messages).
 *
 * Runs in the game server. It trusts moonpend to answer, but not the bytes it
 * receives: replies are size-capped (16 MiB), decoded, checked with
 * protobuf_c_message_check() and matched to the request by id.
 *
 * Thread safety: an mp_client holds one REQ socket with one request in flight
 * and unlocked counters. Use one mp_client per thread (mp_connect() is cheap);
 * never share one between threads without a lock of your own.
 *
 * Delivery: timed resends of the REQ protocol are disabled, because events
 * and ticks are not idempotent. NNG still resends a request once when the
 * connection it went out on breaks before the reply arrives.
 *
 * Errors: every int-returning function returns 0 or a negative errno value;
 * mp_strerror() names it. A 0 return means a well-formed reply arrived: its
 * status may still be an error (mp_status_code()).
 */
#ifndef MOONPEN_CLIENT_H
#define MOONPEN_CLIENT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "moonpen.pb-c.h"
#include "common/val.h"

#define MP_DEFAULT_URL "ipc:///run/moonpen/api.sock"
/* Replies larger than this are dropped; moonpend never sends one (its
 * MP_API_REPLY_MAX_BYTES is the same). Traces with a large snapshot need it. */
#define MP_RECV_MAX_BYTES (64u << 20)
#define MP_SEND_TIMEOUT_MS 5000 /* defaults; see mp_set_timeouts() */
#define MP_RECV_TIMEOUT_MS 30000

/* The transport and decoding errors (negated errno values). */
#define MP_EINVAL (-EINVAL)		/* bad argument (NULL id, bad URL, ...) */
#define MP_ENOMEM (-ENOMEM)		/* out of memory */
#define MP_ECONNREFUSED (-ECONNREFUSED) /* mp_connect: nothing listens at the URL */
#define MP_ETIMEDOUT (-ETIMEDOUT)	/* no reply within the receive timeout */
#define MP_EIO (-EIO)			/* other NNG send/receive failure */
#define MP_EPROTO (-EPROTO)		/* the reply does not decode as a Response */
#define MP_EBADMSG (-EBADMSG)		/* the reply's id is not the request's */

typedef struct mp_client mp_client;
typedef Moonpen__V1__Response mp_response;

/* Opens a REQ socket and dials url (NULL: MP_DEFAULT_URL). The dial is
 * synchronous, so a daemon that is not running fails here (-ECONNREFUSED, also
 * for a missing ipc path); afterwards NNG reconnects on its own.
 * Returns 0 and *out (free with mp_disconnect), or a negative error. */
int mp_connect(const char *url, mp_client **out) __attribute__((warn_unused_result));

/* Closes the socket and frees c (NULL is fine). */
void mp_disconnect(mp_client *c);

/* Sets the send and receive timeouts in milliseconds (<= 0: wait forever).
 * Returns 0 or a negative error. */
int mp_set_timeouts(mp_client *c, int send_ms, int recv_ms) __attribute__((warn_unused_result));

/* The NNG error text of c's last transport failure ("" when none). */
const char *mp_last_error(const mp_client *c);

/* The trace id of the last request sent on c (32 lower-case hex digits when
 * mp_request() generated it), "" before the first request. */
const char *mp_last_trace_id(const mp_client *c);

/* Sends req and waits for its reply. Sets req->id to the next value of c's
 * counter; when req->trace_id is NULL or empty, sends a fresh random one
 * (mp_last_trace_id()) without changing req. req is only read otherwise: it may
 * live on the stack and point at the caller's strings and Values.
 * Returns 0 and *out (free with mp_response_free), or a negative error with
 * *out NULL. */
int mp_request(mp_client *c, Moonpen__V1__Request *req, mp_response **out)
    __attribute__((warn_unused_result));

typedef struct mp_create_opts {
	const char *instance_id;  /* required */
	const char *pack_id;	  /* required */
	const char *pack_version; /* NULL or "": the newest version moonpend has */
	uint64_t seed;
	uint32_t tick_ms; /* 0: the pack's default */
	/* labels: n_labels parallel key/value strings (may be NULL when 0) */
	const char *const *label_keys;
	const char *const *label_values;
	size_t n_labels;
} mp_create_opts;

/* The operations. Each builds one Request and calls mp_request(); strings
 * (NULL counts as a missing argument: -EINVAL) and Values are the caller's and
 * are not kept. The reply of create and info carries `info`, list carries
 * `instances`, the others `result`. */
int mp_create(mp_client *c, const mp_create_opts *opts, mp_response **out)
    __attribute__((warn_unused_result));
/* payload may be NULL (nil). */
int mp_event(mp_client *c, const char *id, const char *name, const val_t *payload,
	     mp_response **out) __attribute__((warn_unused_result));
/* count 0 is taken as 1 by moonpend. */
int mp_tick(mp_client *c, const char *id, uint32_t count, mp_response **out)
    __attribute__((warn_unused_result));
/* args: nargs Values (args may be NULL when nargs is 0). */
int mp_call(mp_client *c, const char *id, const char *fn, const val_t *const *args, size_t nargs,
	    mp_response **out) __attribute__((warn_unused_result));
int mp_info(mp_client *c, const char *id, mp_response **out) __attribute__((warn_unused_result));
int mp_list(mp_client *c, mp_response **out) __attribute__((warn_unused_result));
int mp_close(mp_client *c, const char *id, mp_response **out) __attribute__((warn_unused_result));
/* The reply carries `snapshot`: an opaque blob that mp_restore() accepts. */
int mp_snapshot(mp_client *c, const char *id, mp_response **out)
    __attribute__((warn_unused_result));

/* Answers the query call_id of instance id (the host_call of a PENDING reply):
 * with error when it is not NULL (the script sees nil, error), else with value
 * (NULL is nil). The reply is the input's final result, or PENDING again with
 * the next host_call; TIMEOUT when the query had expired (the input was
 * discarded). */
int mp_host_result(mp_client *c, const char *id, uint64_t call_id, const val_t *value,
		   const char *error, mp_response **out) __attribute__((warn_unused_result));
/* Moves instance id back to the newest kept snapshot at or before tick, then
 * replays the logged inputs up to tick. */
int mp_rollback(mp_client *c, const char *id, uint64_t tick, mp_response **out)
    __attribute__((warn_unused_result));
/* Resets instance id (or creates it when the id is free) from a snapshot blob
 * of len bytes (1..16 MiB) taken with mp_snapshot(). */
int mp_restore(mp_client *c, const char *id, const void *snapshot, size_t len, mp_response **out)
    __attribute__((warn_unused_result));
/* The reply carries `trace_json`: the instance's trace (mp_trace) or the trace
 * of its last worker kill (mp_incident), see docs/trace-format.md. */
int mp_trace(mp_client *c, const char *id, mp_response **out) __attribute__((warn_unused_result));
int mp_incident(mp_client *c, const char *id, mp_response **out)
    __attribute__((warn_unused_result));

/* Frees a reply (NULL is fine). */
void mp_response_free(mp_response *r);

/* The reply's status code; OK when the reply carries no status. */
Moonpen__V1__Status__Code mp_status_code(const mp_response *r);

/* Lower-case name of an instance state ("starting", "running", "quarantined",
 * "closed"; "unknown" outside the enum). Static storage. */
const char *mp_state_name(Moonpen__V1__InstanceInfo__State s);

/* Text for an error returned by this library (never NULL, static). */
const char *mp_strerror(int err);

/* The reply as the JSON object moonpenctl prints, members in this order:
 *   "status":{"code":"ok"|"script_error"|...,"message":S,"traceback":S,"retryable":B},
 *   "effects":[{"api":S,"fn":S,"args":[...],"trigger_id":S}],
 *   "returns":[...], "logs":[{"level":S,"message":S,"tick":N}],
 *   "tick":N, "state_hash":"<lower-case hex, "" when absent>",
 *   "usage":{"instructions":N,"cpu_us":N,"mem_bytes":N},
 * then "info":{instance_id, pack_id, pack_version, seed, tick_ms, tick,
 *   state ("starting"|"running"|"quarantined"|"closed"), state_hash (hex),
 *   labels (object), worker_pid, layers (array), inputs, restarts, reason,
 *   isolation, missing_layers (array), snapshot_tick, snapshot_input,
 *   log_length, snapshots, dead_letters:[{input, tick, kind, name, code,
 *   message}]}
 * when the reply has info, and "instances":[<info objects>] when it lists at
 * least one instance (a caller that sent list adds an empty array itself);
 * then "host_call":{"call_id":N,"api":S,"fn":S,"args":[...],"timeout_ms":N}
 * when the reply is PENDING on a query, "snapshot":"<base64>" when it carries
 * a snapshot, and "trace":<the trace JSON> (a string when it does not parse)
 * when it carries trace_json.
 * Absent parts print as empty ("" / [] / 0 / false). Values follow
 * vjson_to_json() (common/val_json.h); uint64 numbers above INT64_MAX print
 * as negative integers (jansson's integers are signed).
 * Returns a new object (json_decref it) or NULL when out of memory. */
json_t *mp_response_to_json(const mp_response *r);

#endif
