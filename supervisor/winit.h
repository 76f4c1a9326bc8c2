/*
 * winit — the worker Init and Limits of one instance, and its hard deadline,
 * built the same way by moonpend (supervisor/inst_worker.c) and by spk
 * (tools/spk/session.c), so that a trace replayed by spk meets the limits the
 * instance had in moonpend. Runs in the supervisor and in spk; its inputs are
 * the caller's (a loaded pack, checked settings): nothing here is untrusted.
 */
#ifndef MOONPEN_SUP_WINIT_H
#define MOONPEN_SUP_WINIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/pack.h"
#include "worker.pb-c.h"

/* What an Init is made of besides the pack. Pointers are borrowed: they must
 * outlive the Init. */
typedef struct sup_winit_opts {
	const char *instance_id;
	const pack *pk;
	const char *host_api; /* the operator's schema JSON (may be empty) */
	size_t host_api_len;
	uint64_t seed;
	uint32_t tick_ms;     /* 0: the manifest's, else MP_DEFAULT_TICK_MS */
	uint64_t mem_bytes;   /* default Lua cap when the manifest has none (0: MP_LUA_MEM_BYTES) */
	uint32_t deadline_ms; /* default soft deadline likewise (0: MP_SOFT_DEADLINE_MS) */
	Moonpen__Worker__V1__Init__LabelsEntry **labels;
	size_t n_labels;
} sup_winit_opts;

/* The soft deadline and Lua heap cap of an instance of pk: the manifest's,
 * else the given default, else the built-in one (policy/limits.h); capped at
 * MP_MAX_DEADLINE_MS and MP_MAX_LUA_MEM_BYTES. */
uint32_t sup_winit_deadline_ms(const pack *pk, uint32_t deadline_ms);
uint64_t sup_winit_mem_bytes(const pack *pk, uint64_t mem_bytes);

/* The tick length: tick_ms, else the manifest's, else MP_DEFAULT_TICK_MS. */
uint32_t sup_winit_tick_ms(const pack *pk, uint32_t tick_ms);

/* Fills init and lim (both overwritten; init->limits = lim) from o. The
 * snapshot is left empty. Nothing is allocated: every pointer is borrowed. */
void sup_winit_fill(const sup_winit_opts *o, Moonpen__Worker__V1__Init *init,
		    Moonpen__Worker__V1__Limits *lim);

/* The watchdog's hard deadline for an input worth `scale` soft deadlines:
 * deadline_ms x scale x factor, at least MP_HARD_DEADLINE_FLOOR_MS, at most
 * UINT32_MAX. */
uint32_t sup_hard_ms(uint32_t deadline_ms, uint32_t scale, uint32_t factor);

#endif
