/*
 * mod_log — the `log` module and `print`: lines a script writes go into the
 * input's result (never to a file or the worker's stderr). Runs in
 * moonpen-worker; messages are script text, bounded in size and count.
 *
 * Script API: log.debug/info/warn/error(...) and print(...) append one
 * LogLine {level ("debug" | "info" | "warn" | "error" | "print"), message,
 * tick}; the message is the arguments converted by the sandbox's tostring (sbx_tostring) and
 * joined with tabs, cut at MLG_MAX_LINE bytes. Past max_lines in one input,
 * lines are counted and dropped; mlg_take then adds one line "N log lines
 * dropped" (level "warn"). Logs are kept even when the input fails.
 */
#ifndef MOONPEN_MOD_LOG_H
#define MOONPEN_MOD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "moonpen.pb-c.h"
#include "worker/hostapi.h"

#define MLG_MAX_LINE 4096

typedef struct mlg_sink mlg_sink;

/* A new sink; NULL when out of memory. ctx must outlive it. */
mlg_sink *mlg_new(const hapi_ctx *ctx, uint32_t max_lines);
void mlg_free(mlg_sink *s);

/* Publishes `log` and replaces the global `print`. May raise (run protected). */
void mlg_install(lua_State *L, mlg_sink *s);

/* Appends a line from C (the engine's own notes). 0 or -ENOMEM. */
int mlg_add(mlg_sink *s, const char *level, const char *msg) __attribute__((warn_unused_result));

/* Hands the lines collected since the last take to the caller (*n of them;
 * the array and the lines are the caller's) and resets the count of drops. */
Moonpen__V1__LogLine **mlg_take(mlg_sink *s, size_t *n);

#endif
