/*
 * replay — spk replay: re-runs a trace in a fresh confined worker and
 * compares every input's outcome (runs in spk; the trace file is untrusted
 * and fully checked by trace_parse before any worker starts).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pack.h"
#include "common/trace.h"
#include "policy/limits.h"
#include "tools/spk/session.h"
#include "tools/spk/spk.h"

#define SPK_TRACE_MAX (256u << 20)

struct replay_opts {
	const char *trace, *pack_dir, *host_api, *wrapper;
	uint64_t restore_every, deadline_ms;
};

/* The recorded answers of one input, fed in order; a query the trace does
 * not answer, or answers for another call, is a divergence (-EXDEV). */
struct feed {
	const tr_input *in;
	size_t next;
};

static int recorded_answer(void *arg, const Moonpen__V1__HostCall *hc,
			   Moonpen__V1__HostResult **out, char *err, size_t errlen)
{
	struct feed *f = arg;
	const tr_answer *a;

	if (f->next >= f->in->n_answers) {
		snprintf(err, errlen, "the worker made query %s.%s (call %llu), the trace has %zu",
			 hc->api, hc->fn, (unsigned long long)hc->call_id, f->in->n_answers);
		return -EXDEV;
	}
	a = &f->in->answers[f->next++];
	if (a->call_id != hc->call_id) {
		snprintf(err, errlen,
			 "query %s.%s has call_id %llu, the trace answers call_id %llu", hc->api,
			 hc->fn, (unsigned long long)hc->call_id, (unsigned long long)a->call_id);
		return -EXDEV;
	}
	return trace_answer_msg(a, "spk", out, err, errlen);
}

static const char *kind_name(const tr_input *in)
{
	return in->kind == TR_EVENT ? "event" : in->kind == TR_TICK ? "tick" : "call";
}

static int diverged(const trace *t, size_t i, const char *what)
{
	const tr_input *in = &t->inputs[i];

	printf("divergence at input %zu (tick %llu, %s%s%s): %s\n", i, (unsigned long long)in->tick,
	       kind_name(in), in->name ? " " : "", in->name ? in->name : "", what);
	return SPK_FAIL;
}

/* Every n inputs: snapshot, kill the worker, restore a fresh one from it. */
static int restore_point(spk_sess *s, size_t i, char *err, size_t errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	uint8_t *snap = NULL;
	size_t len = 0;
	int r = spk_sess_snapshot(s, &snap, &len, err, errlen);

	if (r == 0)
		r = spk_sess_boot(s, snap, len, &fw, err, errlen);
	if (r == 0 && fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, errlen, "restore before input %zu refused: %s", i,
			 fw->status->message);
		r = -EPROTO;
	}
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	free(snap);
	return r;
}

/* Replays input i. SPK_OK when equal, SPK_FAIL on divergence (printed),
 * SPK_USAGE with err. */
static int replay_one(spk_sess *s, const trace *t, size_t i, char *err, size_t errlen)
{
	const tr_input *in = &t->inputs[i];
	Moonpen__Worker__V1__ToWorker *tw = NULL;
	struct feed f = {in, 0};
	char msg[8192];
	tr_outcome got;
	int r, code = SPK_OK;

	if (spk_sess_tick(s) != in->tick) {
		snprintf(msg, sizeof msg, "tick: expected %llu, got %llu",
			 (unsigned long long)in->tick, (unsigned long long)spk_sess_tick(s));
		return diverged(t, i, msg);
	}
	r = trace_input_msg(in, "spk", &tw, err, errlen);
	if (r < 0)
		return SPK_USAGE;
	r = spk_sess_input(s, tw, recorded_answer, &f, NULL, &got, msg, sizeof msg);
	protobuf_c_message_free_unpacked(&tw->base, NULL);
	if (r == -EXDEV)
		return diverged(t, i, msg);
	if (r < 0) {
		snprintf(err, errlen, "input %zu: %.900s", i, msg);
		return SPK_USAGE;
	}
	if (trace_outcome_diff(&in->out, &got, msg, sizeof msg))
		code = diverged(t, i, msg);
	else if (f.next != in->n_answers) {
		snprintf(msg, sizeof msg, "the trace answers %zu queries, the worker made %zu",
			 in->n_answers, f.next);
		code = diverged(t, i, msg);
	}
	trace_outcome_clear(&got);
	return code;
}

static int replay_all(spk_sess *s, const trace *t, uint64_t every, char *err, size_t errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	char msg[8192], hex[65];
	tr_outcome got;
	size_t i;
	int code = SPK_OK, r;

	r = spk_sess_boot(s, t->start_snapshot, t->snapshot_len, &fw, err, errlen);
	if (r < 0)
		return SPK_USAGE;
	r = trace_outcome_from_reply(&got, fw);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (r < 0)
		return snprintf(err, errlen, "out of memory"), SPK_USAGE;
	if (t->has_init && trace_outcome_diff(&t->init, &got, msg, sizeof msg)) {
		printf("divergence at init: %s\n", msg);
		code = SPK_FAIL;
	} else if (got.status != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, errlen, "the pack did not start: %s", got.message);
		code = SPK_USAGE;
	}
	trace_outcome_clear(&got);
	for (i = 0; code == SPK_OK && i < t->n_inputs; i++) {
		if (every && i > 0 && i % every == 0 && restore_point(s, i, err, errlen) < 0)
			return SPK_USAGE;
		code = replay_one(s, t, i, err, errlen);
	}
	if (code == SPK_OK) {
		const tr_input *last = t->n_inputs ? &t->inputs[t->n_inputs - 1] : NULL;
		printf("replay: %zu inputs equal%s%s\n", t->n_inputs,
		       last && last->out.has_hash ? ", final state_hash " : "",
		       last && last->out.has_hash ? trace_hex32(last->out.state_hash, hex) : "");
	}
	return code;
}

static int is_pack(const char *dir)
{
	char probe[PATH_MAX + 16];

	snprintf(probe, sizeof probe, "%s/manifest.json", dir);
	return access(probe, R_OK) == 0;
}

/* --pack; else the nearest folder holding the trace that is a pack (up to 3
 * levels: PACK/.traces/x.json, as hidden entries are no part of a pack); else
 * a pack folder named after the trace's pack id beside the trace. */
static int pick_pack(const struct replay_opts *o, const trace *t, char *dir, size_t len, char *err,
		     size_t errlen)
{
	char copy[PATH_MAX], here[PATH_MAX];
	int up;

	if (o->pack_dir) {
		snprintf(dir, len, "%s", o->pack_dir);
		return 0;
	}
	snprintf(copy, sizeof copy, "%s", o->trace);
	snprintf(here, sizeof here, "%s", dirname(copy));
	for (up = 0; up < 3; up++) {
		if (is_pack(here)) {
			snprintf(dir, len, "%s", here);
			return 0;
		}
		if (strlen(here) + 4 > sizeof here)
			break;
		strcat(here, "/..");
	}
	snprintf(copy, sizeof copy, "%s", o->trace);
	if ((size_t)snprintf(dir, len, "%s/%s", dirname(copy), t->pack_id) < len && is_pack(dir))
		return 0;
	snprintf(err, errlen, "no pack folder found for %s: name it with --pack DIR", o->trace);
	return -EINVAL;
}

static int check_pack(const trace *t, const pack *pk, char *err, size_t errlen)
{
	uint8_t h[32];
	char a[65], b[65];

	if (strcmp(t->pack_id, pk->mf->id) != 0 || strcmp(t->pack_version, pk->mf->version) != 0) {
		snprintf(err, errlen, "the trace is of pack %s %s, the folder holds %s %s",
			 t->pack_id, t->pack_version, pk->mf->id, pk->mf->version);
		return -EINVAL;
	}
	if (trace_content_hash(pk->files, pk->n_files, h) < 0 ||
	    memcmp(h, t->content_hash, 32) != 0) {
		snprintf(err, errlen,
			 "pack content differs from the trace's: content_hash %s, "
			 "the trace has %s (every file of the folder counts: keep "
			 "traces outside it or in a hidden folder such as .traces/)",
			 trace_hex32(h, a), trace_hex32(t->content_hash, b));
		return -EINVAL;
	}
	return 0;
}

/* The schema the worker gets: --host-api FILE, else the trace's own host_api,
 * else (a trace older than host_api) the default, as spk run picks it. */
static int pick_schema(const struct replay_opts *o, const trace *t, char **out, size_t *len,
		       char *err, size_t errlen)
{
	if (o->host_api == NULL && t->host_api) {
		if (trace_host_api_text(t, out, len) == 0)
			return 0;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return spk_host_api(o->host_api, out, len, err, errlen);
}

static int replay_opts_parse(int argc, char **argv, struct replay_opts *o)
{
	const char *every = NULL, *deadline = NULL;
	int i, k;

	for (i = 1; i < argc; i++) {
		if ((k = spk_opt(argc, argv, &i, "--pack", &o->pack_dir)) ||
		    (k = spk_opt(argc, argv, &i, "--host-api", &o->host_api)) ||
		    (k = spk_opt(argc, argv, &i, "--restore-every", &every)) ||
		    (k = spk_opt(argc, argv, &i, "--worker-wrapper", &o->wrapper)) ||
		    (k = spk_opt(argc, argv, &i, "--deadline-ms", &deadline))) {
			if (k < 0)
				return spk_err(SPK_USAGE, "replay: %s needs a value", argv[i]);
		} else if (argv[i][0] != '-' && o->trace == NULL) {
			o->trace = argv[i];
		} else {
			return spk_err(SPK_USAGE, "replay: unexpected argument \"%s\"", argv[i]);
		}
	}
	if (o->trace == NULL)
		return spk_err(SPK_USAGE,
			       "usage: spk replay TRACE.json [--pack PACK_DIR] "
			       "[--restore-every N] [--host-api SCHEMA] [--deadline-ms MS] "
			       "[--worker-wrapper CMD]\n"
			       "  (the schema is the trace's host_api; --host-api overrides it)");
	if (deadline && spk_u64(deadline, 1, MP_MAX_DEADLINE_MS, &o->deadline_ms) < 0)
		return spk_err(SPK_USAGE, "replay: --deadline-ms: expected 1..%d",
			       MP_MAX_DEADLINE_MS);
	if (every && spk_u64(every, 1, UINT32_MAX, &o->restore_every) < 0)
		return spk_err(SPK_USAGE, "replay: --restore-every: expected a positive integer");
	return SPK_OK;
}

int spk_cmd_replay(int argc, char **argv)
{
	struct replay_opts o = {0};
	char err[1024], dir[PATH_MAX], *text = NULL, *schema = NULL;
	size_t len = 0, schema_len = 0;
	spk_sess *s = NULL;
	trace *t = NULL;
	pack *pk = NULL;
	int code = replay_opts_parse(argc, argv, &o);

	if (code != SPK_OK)
		return code;
	code = SPK_USAGE;
	if (spk_read_file(o.trace, SPK_TRACE_MAX, &text, &len, err, sizeof err) < 0)
		goto out;
	if (trace_parse(text, len, &t, dir, sizeof dir) < 0) {
		snprintf(err, sizeof err, "%.300s: %.700s", o.trace, dir);
		goto out;
	}
	if (pick_pack(&o, t, dir, sizeof dir, err, sizeof err) < 0 ||
	    pack_load_dir(dir, &pk, err, sizeof err) < 0 ||
	    check_pack(t, pk, err, sizeof err) < 0 ||
	    pick_schema(&o, t, &schema, &schema_len, err, sizeof err) < 0)
		goto out;
	{
		spk_sess_opts so = {pk,
				    schema,
				    schema_len,
				    t->seed,
				    t->tick_ms,
				    o.wrapper,
				    (uint32_t)o.deadline_ms};
		if (spk_sess_new(&so, &s, err, sizeof err) < 0)
			goto out;
	}
	code = replay_all(s, t, o.restore_every, err, sizeof err);
out:
	if (code == SPK_USAGE)
		spk_err(code, "%s", err);
	spk_sess_free(s);
	trace_free(t);
	free(text);
	free(schema);
	pack_free(pk);
	return code;
}
