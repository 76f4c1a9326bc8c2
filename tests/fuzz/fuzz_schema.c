/*
 * fuzz_schema — libFuzzer harness for sch_parse (runs in the fuzzer only).
 * Input: a host API schema (operator configuration: trusted, but fully
 * validated, so validated it is). After a successful parse every function is
 * looked up by name and its argument checker is run over a fixed set of
 * argument shapes, and every type is described: the parsed tree must be
 * consistent enough for the worker to use.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static val_t *sample_table(void)
{
	val_t *t = val_new_table(), *k = val_new_string("x", 1), *v = val_new_float(2.0);

	if (t == NULL || k == NULL || v == NULL || val_table_push(t, val_new_int(1)) < 0 ||
	    val_table_set(t, k, v) < 0)
		abort();
	return t;
}

static void exercise_fn(const sch_api *a, const sch_fn *f)
{
	val_t *args[4];
	char err[256], desc[128];
	size_t i;

	if (sch_fn_find(a, f->name) != f)
		abort();
	for (i = 0; i < f->n_params; i++)
		(void)sch_type_describe(f->params[i].type, desc, sizeof desc);
	args[0] = val_new_string("goblin", 6);
	args[1] = sample_table();
	args[2] = val_new_float(3.0);
	args[3] = val_new_bool(1);
	if (!args[0] || !args[2] || !args[3])
		abort();
	for (i = 0; i <= 4; i++)
		(void)sch_check_args(a, f, args, i, err, sizeof err);
	for (i = 0; i < 4; i++)
		val_free(args[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sch_schema *s = NULL;
	char err[256];
	size_t i, j;
	int r;

	memset(err, 'x', sizeof err);
	r = sch_parse((const char *)data, size, &s, err, sizeof err);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || memchr(err, '\0', sizeof err) == NULL)
			abort();
		return 0;
	}
	for (i = 0; i < s->n_apis; i++) {
		if (sch_api_find(s, s->apis[i].name) != &s->apis[i])
			abort();
		(void)sch_class_name(s->apis[i].cls);
		for (j = 0; j < s->apis[i].n_fns; j++)
			exercise_fn(&s->apis[i], &s->apis[i].fns[j]);
	}
	sch_free(s);
	return 0;
}
