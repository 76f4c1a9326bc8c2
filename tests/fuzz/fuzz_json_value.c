/*
 * fuzz_json_value — libFuzzer harness for vjson_parse (runs in the fuzzer
 * only). Input: JSON text from moonpenctl's command line or the HTTP API:
 * hostile. An accepted tree must pass val_check at the same depth, survive a
 * copy (val_equal to the original), and JSON -> Value -> JSON -> Value must
 * give an equal tree: the lossy cases of vjson_to_json (NaN and inf floats,
 * non-string map keys, mixed array and map parts) cannot come out of
 * vjson_parse, so on its output the round trip is exact.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/val_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEPTH 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	val_t *v = NULL, *c;
	json_t *j;
	char *text, err[256];
	int r;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(err, 'x', sizeof err);
	r = vjson_parse(text, DEPTH, &v, err, sizeof err);
	free(text);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || memchr(err, '\0', sizeof err) == NULL)
			abort();
		return 0;
	}
	if (val_check(v, DEPTH, err, sizeof err) < 0)
		abort();
	c = val_copy(v);
	if (c == NULL || !val_equal(v, c))
		abort();
	val_free(c);
	j = vjson_to_json(v);
	if (j == NULL)
		abort();
	c = NULL;
	if (vjson_from_json(j, DEPTH, &c, err, sizeof err) < 0 || !val_equal(v, c))
		abort();
	val_free(c);
	json_decref(j);
	val_free(v);
	return 0;
}
