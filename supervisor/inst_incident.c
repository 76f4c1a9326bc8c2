/*
 * inst_incident — the flight recorder: the last worker kill under an input of
 * an instance (the restore point it used, the log entries after it with their
 * outcomes, the fatal input, the death), answered by GetIncident as a trace
 * that `spk replay` reproduces (docs/recovery.md). With a durable store the
 * trace is rendered at the kill and stored (sst_put_incident), so that it
 * survives a restart of moonpend; in memory mode only copies are kept and the
 * trace is rendered when asked for. Runs in the supervisor, on the instance's
 * thread. Trusts the instance's own log (checked when it was written); an
 * incident read back from the store was checked by store.c (a blob of
 * bounded size without NUL) and is served as the text it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/trace.h"
#include "supervisor/inst_priv.h"

/* ---- copies and their release ---------------------------------------------------------------- */

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, p, len);
	return d;
}

/* Frees the copies of x (snapshot, Init outcome, entries), keeping its text. */
static void incident_drop_copies(struct inst_incident *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		free(x->ents[i].data);
		free(x->ents[i].out);
	}
	free(x->ents);
	free(x->snap);
	free(x->init_out);
	x->ents = NULL;
	x->n = 0;
	x->snap = x->init_out = NULL;
	x->snap_len = x->init_out_len = 0;
}

static void incident_free(struct inst_incident *x)
{
	if (x == NULL)
		return;
	incident_drop_copies(x);
	free(x->text);
	free(x);
}

void inst_incident_free(struct inst *in)
{
	incident_free(in->incident);
	in->incident = NULL;
}

/* ---- recording ------------------------------------------------------------------------------- */

/* Copies entry e into d (data and outcome). 0 or -ENOMEM. */
static int ent_copy(ilog_ent *d, const ilog_ent *e)
{
	*d = *e;
	d->out = NULL;
	d->data = dup_bytes(e->data, e->len);
	if (e->out)
		d->out = dup_bytes(e->out, e->out_len);
	return d->data && (d->out || !e->out) ? 0 : -ENOMEM;
}

/* The fatal message tw (an input, or the host_result that resumed the
 * pending input), packed (seq 0), as the last entry of x. */
static int incident_fatal(struct inst_incident *x, const Moonpen__Worker__V1__ToWorker *tw,
			  uint64_t tick)
{
	Moonpen__Worker__V1__ToWorker c = *tw;
	ilog_ent *e = &x->ents[x->n];

	memset(e, 0, sizeof *e);
	c.seq = 0;
	e->len = protobuf_c_message_get_packed_size(&c.base);
	if ((e->data = malloc(e->len ? e->len : 1)) == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&c.base, e->data);
	e->input = tw->op_case != MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
	e->tick = tick;
	x->n++;
	return 0;
}

static int incident_fill(struct inst_incident *x, const struct inst *in,
			 const Moonpen__Worker__V1__ToWorker *tw)
{
	const ilog *l = &in->ilog;
	const ilog_snap *sn = ilog_snap_newest(l);
	size_t i;

	if (sn && (x->snap = dup_bytes(sn->data, sn->len)) == NULL)
		return -ENOMEM;
	x->snap_len = sn ? sn->len : 0;
	if (!sn && l->init_out && (x->init_out = dup_bytes(l->init_out, l->init_out_len)) == NULL)
		return -ENOMEM;
	x->init_out_len = x->init_out ? l->init_out_len : 0;
	if ((x->ents = calloc(l->n + 1, sizeof *x->ents)) == NULL)
		return -ENOMEM;
	for (i = 0; i < l->n; i++, x->n++) {
		if (ent_copy(&x->ents[i], &l->ents[i]) < 0)
			return -ENOMEM;
		if (x->ents[i].input && !x->ents[i].done) /* pending on a query: began now */
			x->ents[i].tick = in->tick;
	}
	return incident_fatal(x, tw, in->tick);
}

/* The trace JSON of x (its text when it has one, else rendered from its
 * copies): 0 and *text (malloc'd), -ENOMEM, or -EINVAL (a logged input does
 * not fit a trace). */
static int incident_render(const struct inst *in, const struct inst_incident *x, char **text)
{
	trace *t = NULL;
	int r;

	if (x->text) {
		*text = (char *)dup_bytes((const uint8_t *)x->text, x->text_len + 1);
		return *text ? 0 : -ENOMEM;
	}
	r = inst_trace_build(in, x->snap, x->snap_len, x->init_out, x->init_out_len, x->ents, x->n,
			     &t);
	if (r == 0)
		r = trace_end_killed(t, x->code, x->why);
	if (r == 0 && (*text = trace_dumps(t)) == NULL)
		r = -ENOMEM;
	trace_free(t);
	return r;
}

/* With a durable store: renders x now (it then keeps the text instead of its
 * copies) and stores it. A failure is logged; x still serves from memory. */
static void incident_persist(struct inst *in, struct inst_incident *x)
{
	sst *st = in->is->s->store;
	char *text = NULL;
	int r;

	if (st == NULL) /* memory mode: rendered only when GetIncident asks */
		return;
	r = incident_render(in, x, &text);
	if (r < 0 || text == NULL) {
		log_error("instance %s: incident not stored: %s", in->id,
			  r == -EINVAL ? "a logged input does not fit a trace" : "out of memory");
		return;
	}
	x->text = text;
	x->text_len = strlen(text);
	incident_drop_copies(x);
	r = sst_put_incident(st, in->id, (int)x->code, x->text, x->text_len);
	if (r < 0)
		log_error("instance %s: the store did not take its incident (%s); it is kept in "
			  "memory until moonpend stops",
			  in->id, strerror(-r));
}

void inst_record_incident(struct inst *in, const Moonpen__Worker__V1__ToWorker *tw)
{
	struct inst_incident *x = calloc(1, sizeof *x);

	if (x == NULL || incident_fill(x, in, tw) < 0) {
		incident_free(x);
		log_warn("instance %s: incident not recorded (out of memory)", in->id);
		return;
	}
	x->code = in->death_code;
	snprintf(x->why, sizeof x->why, "%s", in->death);
	incident_persist(in, x);
	inst_incident_free(in);
	in->incident = x;
}

int inst_incident_load(struct inst *in, const sst_loaded *l)
{
	struct inst_incident *x;

	if (l->incident == NULL)
		return 0;
	x = calloc(1, sizeof *x);
	if (x == NULL || (x->text = malloc(l->incident_len + 1)) == NULL) {
		free(x);
		return -ENOMEM;
	}
	memcpy(x->text, l->incident, l->incident_len);
	x->text[l->incident_len] = '\0';
	x->text_len = l->incident_len;
	x->code = (st_code)l->incident_code;
	inst_incident_free(in);
	in->incident = x;
	return 0;
}

/* ---- GetIncident -------------------------------------------------------------------------------
 */

void inst_serve_incident(struct inst *in, struct job *j)
{
	char *text = NULL;
	int r;

	if (in->incident == NULL)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND,
				     "no incident recorded for instance %s", in->id);
	r = incident_render(in, in->incident, &text);
	if (r < 0)
		return inst_job_fail(
		    j, MOONPEN__V1__STATUS__CODE__INTERNAL, "cannot build the incident trace: %s",
		    r == -ENOMEM ? "out of memory" : "a logged input does not fit");
	inst_answer_text(j, text);
}
