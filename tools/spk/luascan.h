/*
 * luascan — static snapshot-safety checks of one Lua source (DESIGN §4), for
 * spk lint. Runs in spk; the source is untrusted text that has already
 * compiled (luaL_loadbufferx in text mode): it is tokenized here, never run.
 *
 * Findings, each with its line:
 *  - an assignment to a global inside a function (globals are frozen once the
 *    entry chunk has run), including "function name()" statements;
 *  - an assignment inside a function to a local of the chunk's top level (an
 *    upvalue: state kept outside `state`, lost by a snapshot and restore);
 *  - ev.on inside a function (handlers are registered at the top level, so
 *    that a restore, which only re-runs the chunk, re-registers them);
 *  - timer.every / timer.after with an anonymous function or a local function
 *    (a timer names a global function so that a snapshot can restore it).
 * The checks are lexical: they see no aliasing (local t = timer) and no _ENV
 * tricks; they do not replace running the pack.
 */
#ifndef MOONPEN_SPK_LUASCAN_H
#define MOONPEN_SPK_LUASCAN_H

#include <stddef.h>

/* Called once per finding: line (1-based) and a message. */
typedef void (*lscan_report)(void *arg, unsigned line, const char *msg);

/* Scans src[0..len). Returns the number of findings, or -ENOMEM. */
int lscan_check(const char *src, size_t len, lscan_report report, void *arg)
    __attribute__((warn_unused_result));

#endif
