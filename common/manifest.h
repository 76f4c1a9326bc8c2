/*
 * manifest — parse and validate a pack's manifest.json (supervisor, worker,
 * spk). The bytes come from a pack author: every field is checked and a bad
 * one is named in the error.
 */
#ifndef MOONPEN_MANIFEST_H
#define MOONPEN_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

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
	mf_rate rate; /* rate_limits.triggers.<id> */
} mf_trigger;

typedef struct mf_manifest {
	char *id;      /* [a-z0-9][a-z0-9._-]{0,63} */
	char *version; /* MAJOR.MINOR.PATCH, digits only */
	char *engine;  /* "lua" */
	char *entry;   /* pack-relative path of the entry chunk, e.g. "main.lua" */
	char **apis;   /* host APIs and built-in modules the pack uses */
	size_t n_apis;
	mf_trigger *triggers;
	size_t n_triggers;
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
