/*
 * fuzz_manifest — libFuzzer harness for mf_parse (runs in the fuzzer only).
 * Input: a pack's manifest.json, written by a pack author: hostile. Asserts
 * the contract: 0 with a manifest whose required fields are set, or -EINVAL /
 * -ENOMEM with a NUL-terminated message; and mf_version_cmp on the parsed
 * version is reflexive.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mf_manifest *m = NULL;
	char err[256];
	size_t i;
	int r;

	memset(err, 'x', sizeof err);
	r = mf_parse((const char *)data, size, &m, err, sizeof err);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || m != NULL ||
		    memchr(err, '\0', sizeof err) == NULL)
			abort();
		return 0;
	}
	if (m == NULL || m->id == NULL || m->version == NULL || m->entry == NULL)
		abort();
	if (mf_version_cmp(m->version, m->version) != 0)
		abort();
	for (i = 0; i < m->n_apis; i++)
		if (!mf_uses_api(m, m->apis[i]))
			abort();
	mf_free(m);
	return 0;
}
