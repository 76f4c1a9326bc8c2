/*
 * trace_priv — what trace.c shares with trace_parse.c (the trace module's two
 * files; see trace.h). Not for other modules.
 */
#ifndef MOONPEN_TRACE_PRIV_H
#define MOONPEN_TRACE_PRIV_H

#include "common/trace.h"

/* A zeroed input appended to t->inputs (index set, not yet counted in
 * n_inputs: the caller increments it), or NULL when out of memory. */
tr_input *trace_grow_inputs(trace *t);

/* A zeroed answer at in->answers[in->n_answers] (not yet counted), or NULL
 * when out of memory. */
tr_answer *trace_grow_answers(tr_input *in);

/* "event", "tick" or "call". */
const char *trace_kind_name(tr_kind k);

#endif
