/*
 * winit — worker Init, Limits and hard deadline, shared by moonpend and spk
 * (runs in both; inputs are the caller's checked values).
 */
#include "supervisor/winit.h"

#include "common/manifest.h"
#include "policy/limits.h"

uint32_t sup_winit_deadline_ms(const pack *pk, uint32_t deadline_ms)
{
	uint32_t ms = pk->mf->deadline_ms ? pk->mf->deadline_ms
		      : deadline_ms	  ? deadline_ms
					  : MP_SOFT_DEADLINE_MS;

	return ms > MP_MAX_DEADLINE_MS ? MP_MAX_DEADLINE_MS : ms;
}

uint64_t sup_winit_mem_bytes(const pack *pk, uint64_t mem_bytes)
{
	uint64_t b = pk->mf->mem_bytes ? pk->mf->mem_bytes
		     : mem_bytes       ? mem_bytes
				       : MP_LUA_MEM_BYTES;

	return b > MP_MAX_LUA_MEM_BYTES ? MP_MAX_LUA_MEM_BYTES : b;
}

uint32_t sup_winit_tick_ms(const pack *pk, uint32_t tick_ms)
{
	return tick_ms ? tick_ms : pk->mf->tick_ms ? pk->mf->tick_ms : MP_DEFAULT_TICK_MS;
}

void sup_winit_fill(const sup_winit_opts *o, Moonpen__Worker__V1__Init *init,
		    Moonpen__Worker__V1__Limits *lim)
{
	const pack *pk = o->pk;

	moonpen__worker__v1__init__init(init);
	moonpen__worker__v1__limits__init(lim);
	lim->mem_bytes = sup_winit_mem_bytes(pk, o->mem_bytes);
	lim->deadline_ms = sup_winit_deadline_ms(pk, o->deadline_ms);
	lim->instructions = pk->mf->instructions;
	lim->max_effects = MP_MAX_EFFECTS;
	lim->max_logs = MP_MAX_LOGS;
	lim->max_value_depth = MP_MAX_VALUE_DEPTH;
	lim->max_emit_depth = MP_MAX_EMIT_DEPTH;
	init->instance_id = (char *)o->instance_id;
	init->pack_id = pk->mf->id;
	init->pack_version = pk->mf->version;
	init->manifest_json.data = (uint8_t *)pk->manifest_json;
	init->manifest_json.len = pk->manifest_len;
	init->n_files = pk->n_files;
	init->files = pk->files;
	init->host_api_json.data = (uint8_t *)o->host_api;
	init->host_api_json.len = o->host_api_len;
	init->seed = o->seed;
	init->tick_ms = sup_winit_tick_ms(pk, o->tick_ms);
	init->limits = lim;
	init->n_labels = o->n_labels;
	init->labels = o->labels;
}

uint32_t sup_hard_ms(uint32_t deadline_ms, uint32_t scale, uint32_t factor)
{
	uint64_t ms = (uint64_t)deadline_ms * scale * factor;

	if (ms < MP_HARD_DEADLINE_FLOOR_MS)
		ms = MP_HARD_DEADLINE_FLOOR_MS;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}
