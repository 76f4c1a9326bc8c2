/*
 * sup — the supervisor's shared context, passed to every module (no globals
 * shared across modules). Runs in moonpend.
 */
#ifndef MOONPEN_SUP_H
#define MOONPEN_SUP_H

#include <stdatomic.h>
#include <stddef.h>

#include "supervisor/config.h"
#include "supervisor/packs.h"

struct sup_insts;
struct sst;
struct sup_api;

typedef struct sup {
	sup_config cfg;
	sup_packs *packs;
	char *host_api; /* the host API schema, handed to every worker */
	size_t host_api_len;
	struct grants *grants; /* the operator's API grants (common/grants.h) */
	struct sst *store;     /* durable store (supervisor/store.h); NULL: --durability memory,
				* every sst_* function then does nothing */
	struct sup_insts *insts;
	struct sup_api *api;
	atomic_uint next_worker; /* worker ids: unique per run */
	atomic_int stopping;
} sup;

#endif
