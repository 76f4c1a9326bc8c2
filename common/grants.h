/*
 * grants — the operator's API grants (policy/grants.json): which packs may
 * use which declared host APIs. Runs in the supervisor (checked when an
 * instance is created, before any worker sees the pack) and in tools (spk
 * lint). The file is trusted operator configuration but validated field by
 * field like the host API schema; the manifests it is checked against come
 * from pack authors.
 *
 * Format (version 1):
 *
 *   {"version": 1,
 *    "description": "...",                       optional
 *    "grants": [                                 at most 256
 *      {"packs": ["dungeon-*", "key-collection"], 1..64 pack id patterns
 *       "apis": ["ecs", "ui"],                   1..64 API names, or "*" (every API)
 *       "description": "..."},                   optional
 *      ... ]}
 *
 * A pack id pattern is 1..64 bytes of [a-z0-9._-*?]: '*' matches any run of
 * characters (empty included), '?' exactly one; "*" alone matches every pack.
 * An API name is [a-z_][a-z0-9_]{0,63}. Unknown keys, duplicate keys and
 * empty arrays are refused; the error names the bad part
 * ("grants[2].packs[1]: ...").
 *
 * Meaning: a pack may use a declared host API when at least one grant has a
 * pattern matching the pack's id and lists the API (or "*"). The worker's
 * built-in modules (state, ev, timer, rand, log, clock) need no grant. Grants
 * only add: there is no deny rule, and no grant file grants nothing.
 */
#ifndef MOONPEN_GRANTS_H
#define MOONPEN_GRANTS_H

#include <stddef.h>

#include "common/manifest.h"

typedef struct grants grants;

#define GRANTS_MAX 256	       /* grants per file */
#define GRANTS_MAX_ITEMS 64    /* patterns or APIs per grant */
#define GRANTS_MAX_BYTES 65536 /* size of the file */

/* Parses json[0..len). Returns 0 and *out (free with grants_free), or -EINVAL
 * with the bad part named in err ("grants[1].apis[2]: expected an API name or
 * \"*\""), or -ENOMEM ("out of memory" in err). */
int grants_parse(const char *json, size_t len, grants **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Checks every non-built-in API that m lists against g. Returns 0 when all
 * are granted, or -EPERM with the first refusal in err: "pack 'x' is not
 * granted api 'music' (policy/grants.json)". g NULL grants nothing. */
int grants_check(const grants *g, const mf_manifest *m, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Nonzero when pattern (as in the file) matches the pack id. */
int grants_match(const char *pattern, const char *id);

/* NULL is fine. */
void grants_free(grants *g);

#endif
