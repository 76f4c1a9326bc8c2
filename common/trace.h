/*
 * trace — the trace of an instance as a JSON model (docs/trace-format.md):
 * which pack, seed and tick length, an optional start snapshot, and every
 * input with the query answers it received and its outcome (status, effects,
 * returns, state hash). Built by spk run --record and by moonpend
 * (ExportTrace, GetIncident) from Init (with its host API schema) and
 * ToWorker/FromWorker messages (with the log lines of each outcome); read
 * back by spk replay. Runs in spk and the supervisor. Trace text is untrusted:
 * trace_parse() checks every field and names the bad one.
 */
#ifndef MOONPEN_TRACE_H
#define MOONPEN_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/status.h"
#include "worker.pb-c.h"

#define TRACE_FORMAT 1
#define TRACE_MAX_HOST_API (1u << 20) /* host_api, as compact JSON (moonpend's file cap) */
#define TRACE_MAX_LOG_BYTES 65536     /* one log message (the worker cuts at 4096) */

typedef enum tr_kind { TR_EVENT, TR_TICK, TR_CALL } tr_kind;

/* What an input (or Init) led to. */
typedef struct tr_outcome {
	st_code status;
	char *message;	 /* the status message, or NULL; informative, never compared */
	int killed;	 /* the worker was killed on this input (hard deadline, crash) */
	json_t *effects; /* array of {"api","fn","args"[,"trigger"]} */
	json_t *returns; /* array of values (val_json mapping) */
	/* array of {"level","message"} (the script's log lines, in order; empty
	 * when none); NULL: not recorded (a trace older than logs), not compared */
	json_t *logs;
	int has_hash;
	uint8_t state_hash[32];
} tr_outcome;

/* A query answer fed to the input (HostResult): value or error, not both. */
typedef struct tr_answer {
	uint64_t call_id;
	json_t *value; /* NULL when error is set */
	char *error;
} tr_answer;

typedef struct tr_input {
	uint64_t index; /* position in inputs[] */
	uint64_t tick;	/* the instance's tick before the input */
	tr_kind kind;
	char *name;	 /* event name or function (NULL for a tick) */
	json_t *payload; /* event payload (JSON null when none) */
	uint32_t count;	 /* ticks, >= 1 */
	json_t *args;	 /* call arguments (array) */
	tr_answer *answers;
	size_t n_answers, cap_answers;
	int done; /* an outcome was recorded */
	tr_outcome out;
} tr_input;

typedef struct trace {
	char *pack_id, *pack_version;
	uint8_t content_hash[32];
	uint64_t seed;
	uint32_t tick_ms;
	uint8_t *start_snapshot; /* encoded moonpen.worker.v1.Snapshot, or NULL */
	size_t snapshot_len;
	/* the host API schema the worker was given (Init.host_api_json) as a JSON
	 * object, keys sorted; NULL: not recorded (replay uses the default) */
	json_t *host_api;
	int has_init; /* init: the reply to Init (fresh instances only) */
	tr_outcome init;
	tr_input *inputs;
	size_t n_inputs, cap_inputs;
} trace;

/* ---- content hash ------------------------------------------------------------ */

/* BLAKE2b-256 over the files in order, each as its path, a NUL byte, its size
 * as 8 bytes little-endian, then its bytes (the same as pack.h's pack.hash).
 * The files must be sorted strictly by path (bytewise): -EINVAL otherwise. */
int trace_content_hash(Moonpen__Worker__V1__PackFile *const *files, size_t n, uint8_t out[32])
    __attribute__((warn_unused_result));

/* ---- building (spk run, moonpend) -------------------------------------------------- */

/* A new trace from the Init a worker was sent (pack id, version, content hash
 * of init->files, seed, tick_ms, init->snapshot as start snapshot, and
 * init->host_api_json as host_api: empty bytes are the empty schema
 * {"apis":{},"version":1}). 0 and *out (trace_free), -EINVAL (files not
 * sorted, a schema that is not a JSON object), -ENOMEM. */
int trace_from_init(const Moonpen__Worker__V1__Init *init, trace **out)
    __attribute__((warn_unused_result));

/* Records the worker's reply to Init as the trace's "init" outcome. 0 or -ENOMEM. */
int trace_set_init_reply(trace *t, const Moonpen__Worker__V1__FromWorker *fw)
    __attribute__((warn_unused_result));

/* Appends an input (tw is an event, tick or call) at tick `tick`. 0, -EINVAL
 * (another op, or a Value that JSON cannot hold), -ENOMEM. */
int trace_begin_input(trace *t, uint64_t tick, const Moonpen__Worker__V1__ToWorker *tw)
    __attribute__((warn_unused_result));

/* Appends a query answer to the last input. 0, -EINVAL (no open input), -ENOMEM. */
int trace_add_answer(trace *t, const Moonpen__V1__HostResult *hr)
    __attribute__((warn_unused_result));

/* Records the last input's outcome from the worker's final reply (not
 * PENDING), or, with trace_end_killed, the worker's death (code from
 * wchan_death). 0, -EINVAL (no open input), -ENOMEM. */
int trace_end_input(trace *t, const Moonpen__Worker__V1__FromWorker *fw)
    __attribute__((warn_unused_result));
int trace_end_killed(trace *t, st_code code, const char *why) __attribute__((warn_unused_result));

/* Fills o from a reply (status, effects, returns, log lines, state hash; text
 * that is not UTF-8 is scrubbed as wreply does), or from a
 * death. o is overwritten (free with trace_outcome_clear). 0 or -ENOMEM. */
int trace_outcome_from_reply(tr_outcome *o, const Moonpen__Worker__V1__FromWorker *fw)
    __attribute__((warn_unused_result));
int trace_outcome_killed(tr_outcome *o, st_code code, const char *why)
    __attribute__((warn_unused_result));
void trace_outcome_clear(tr_outcome *o);

/* ---- JSON text ---------------------------------------------------------------------- */

/* The whole trace as JSON text (malloc'd, free it), or NULL when out of memory. */
char *trace_dumps(const trace *t);

/* One input as a JSON object (json_decref it), or NULL when out of memory. */
json_t *trace_input_json(const tr_input *in);

/* The outcome's fields as a JSON object ({"status", "effects", ...}), or NULL. */
json_t *trace_outcome_json(const tr_outcome *o);

/* Parses and checks trace text. 0 and *out (trace_free), or -EINVAL with err
 * naming the field ("inputs[3].effects[0].fn: expected a string"), -ENOMEM.
 * host_api must be an object of at most TRACE_MAX_HOST_API bytes that
 * sch_parse accepts ("host_api: apis: expected an object"). */
int trace_parse(const char *text, size_t len, trace **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The trace's host_api as compact JSON text (keys sorted) in *out (malloc'd,
 * free it) and *len; *out NULL when the trace has none. 0 or -ENOMEM. */
int trace_host_api_text(const trace *t, char **out, size_t *len)
    __attribute__((warn_unused_result));

/* ---- replay ------------------------------------------------------------------------- */

/* Compares what replay got with what the trace holds: status, killed,
 * effects, returns, logs (only when both have them: want->logs NULL is a
 * trace without logs), state hash (the message is not compared). 0 when
 * equal, 1 with a description in msg ("effects: expected [...], got [...]",
 * "logs[0] (of 1 expected, 1 got): expected {...}, got {...}"). */
int trace_outcome_diff(const tr_outcome *want, const tr_outcome *got, char *msg, size_t len);

/* The ToWorker message for an input (seq 0), every member malloc'd: free with
 * protobuf_c_message_free_unpacked. 0, -EINVAL with err, -ENOMEM. */
int trace_input_msg(const tr_input *in, const char *instance_id,
		    Moonpen__Worker__V1__ToWorker **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The HostResult for an answer, every member malloc'd (free as above).
 * 0, -EINVAL with err, -ENOMEM. */
int trace_answer_msg(const tr_answer *a, const char *instance_id, Moonpen__V1__HostResult **out,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

/* Lowercase hex of 32 bytes into buf (65 bytes). Returns buf. */
char *trace_hex32(const uint8_t h[32], char buf[65]);

void trace_free(trace *t);

#endif
