/*
 * types — `spk types`: write a Lua Language Server annotation file (---@meta)
 * for what a pack's scripts can call: the declared host APIs of the
 * operator's schema, the worker's built-in modules (state, ev, timer, clock,
 * rand, log, math.random), the typed error objects and the lifecycle hooks.
 *
 * Runs in the spk tool, on the author's machine. The schema is operator
 * configuration and the manifest the author's own file; both are parsed and
 * validated by common/ before anything is written. Every name written comes
 * from a validated identifier; descriptions are written as comment lines only
 * (line breaks split into more comment lines), so the output is always a Lua
 * chunk that compiles (`luac -p`).
 *
 * Schema types map to annotations: string, integer, number, boolean, table,
 * any as themselves; {"record": ...} to a ---@class named after its path
 * (ecs.spawn.opts, ecs.spawn.opts.pos) with one ---@field per field;
 * {"list": T} to T[]; {"optional": T} to `name?` on a parameter or field and
 * T|nil elsewhere; "variadic" to `...`. Effects return nothing; queries are
 * marked ---@async (they suspend the script until the game server answers)
 * and return `value|nil, string?` (the answer, or nil and why).
 */
#ifndef MOONPEN_SPK_TYPES_H
#define MOONPEN_SPK_TYPES_H

#include <stddef.h>
#include <stdio.h>

/* Writes the annotation file for the schema schema_json[0..schema_len) to
 * out. With a manifest (manifest_json non-NULL), only the schema APIs that it
 * lists are written (the built-in modules and hooks always are). Returns 0, or
 * -EINVAL with the reason in err ("host API schema: ...", "manifest: ...",
 * "manifest lists api 'path', which the host API schema does not define"),
 * -ENOMEM, or -EIO when writing to out failed. */
int spk_types_write(const char *schema_json, size_t schema_len, const char *manifest_json,
		    size_t manifest_len, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
