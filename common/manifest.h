/*
 * manifest — parse and validate a pack's manifest.json (supervisor, worker,
 * spk). The bytes come from a pack author: every field is checked and a bad
 * one is named in the error.
 */
#ifndef MOONPEN_MANIFEST_H
#define MOONPEN_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/val.h"

/* Bounds of the manifest's "timers" (docs/script-api.md section 8). */
#define MF_MAX_TIMERS 64	  /* entries of "timers" */
#define MF_MAX_TIMER_ARGS 16	  /* "args" of one timer */
#define MF_TIMER_ARGS_DEPTH 8	  /* tables nested in one argument */
#define MF_TIMER_ARGS_BYTES 4096  /* encoded size of one timer's args */
#define MF_MAX_TIMER_MS 86400000u /* every_ms / after_ms: at most one day */

/* A token bucket (manifest "rate_limits"); per_second 0 means no limit. */
typedef struct mf_rate {
	uint32_t per_second; /* tokens added per second, 1..1000000 */
	uint32_t burst;	     /* bucket size, 1..1000000 (default: per_second) */
} mf_rate;

typedef struct mf_trigger {
	char *id;	 /* unique within the pack */
	char *event;	 /* event pattern: "OnLeverSwitch", "OnAreaEnter:*", "combat.*" */
	char *condition; /* Lua expression, or NULL (always) */
	char *action;	 /* Lua snippet, or the name of a global function */
	uint32_t throttle_ms;
	uint32_t debounce_ms; /* 0: fires at once; never both throttle_ms and debounce_ms */
	mf_rate rate;	      /* rate_limits.triggers.<id> */
} mf_trigger;

/* A declarative timer ("timers"): started at creation, before on_init, in
 * manifest order, so the i-th one (from 0) has timer id i + 1. */
typedef struct mf_timer {
	char *id;     /* unique among the timers: what timer.id(name) looks up */
	char *fn;     /* name of a global function */
	uint32_t ms;  /* every_ms or after_ms, 1..MF_MAX_TIMER_MS */
	int every;    /* 1: every_ms (re-armed), 0: after_ms (once) */
	val_t **args; /* plain data, deep-copied into the timer */
	size_t nargs;
} mf_timer;

typedef struct mf_manifest {
	char *id;      /* [a-z0-9][a-z0-9._-]{0,63} */
	char *version; /* MAJOR.MINOR.PATCH, digits only */
	char *engine;  /* "lua" */
	char *entry;   /* pack-relative path of the entry chunk, e.g. "main.lua" */
	char **apis;   /* host APIs and built-in modules the pack uses */
	size_t n_apis;
	mf_trigger *triggers;
	size_t n_triggers;
	mf_timer *timers;
	size_t n_timers;
	uint64_t mem_bytes;    /* limits.memory_mb * 2^20; 0 = supervisor default */
	uint32_t deadline_ms;  /* limits.deadline_ms; 0 = default */
	uint64_t instructions; /* limits.instructions; 0 = no instruction budget */
	uint32_t tick_ms;      /* default tick length; 0 = 50 */
	uint32_t min_protocol;
	char *player_field;  /* payload field naming the player (rate limits), or NULL */
	int pool;	     /* "isolation": "pool": hosted by shared pool workers; 0: own worker */
	mf_rate rate_global; /* rate_limits.global: every event of an instance */
	mf_rate rate_player; /* rate_limits.per_player: events naming one player */
} mf_manifest;

/* Parses json[0..len). Returns 0 and *out (free with mf_free), or -EINVAL with
 * a message naming the bad field in err, or -ENOMEM. */
int mf_parse(const char *json, size_t len, mf_manifest **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void mf_free(mf_manifest *m);

/* Compares two MAJOR.MINOR.PATCH versions numerically: <0, 0, >0. */
int mf_version_cmp(const char *a, const char *b);

/* Nonzero when the manifest lists api in "apis". */
int mf_uses_api(const mf_manifest *m, const char *api);

#endif
