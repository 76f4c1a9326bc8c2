/*
 * cmd_types — spk types: Lua type declarations of the host API (runs in spk;
 * the schema and the manifest are untrusted files). The writer itself is
 * spk_types_write() in tools/spk/types.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/spk/spk.h"

#if defined(__has_include)
#if __has_include("tools/spk/types.h")
#include "tools/spk/types.h"
#define SPK_HAVE_TYPES 1
#endif
#endif

struct types_opts {
	const char *schema, *pack_dir, *out;
};

static int types_opts_parse(int argc, char **argv, struct types_opts *o)
{
	int i, k;

	for (i = 1; i < argc; i++) {
		if ((k = spk_opt(argc, argv, &i, "--schema", &o->schema)) ||
		    (k = spk_opt(argc, argv, &i, "--pack", &o->pack_dir)) ||
		    (k = spk_opt(argc, argv, &i, "-o", &o->out))) {
			if (k < 0)
				return spk_err(SPK_USAGE, "types: %s needs a value", argv[i]);
		} else {
			return spk_err(SPK_USAGE,
				       "types: unexpected argument \"%s\"; usage: spk "
				       "types [--schema FILE] [--pack DIR] [-o FILE]",
				       argv[i]);
		}
	}
	return SPK_OK;
}

#ifdef SPK_HAVE_TYPES
/* Writes the declarations to o->out (atomically through a temporary file
 * next to it) or stdout. */
static int types_write(const struct types_opts *o, const char *schema, size_t schema_len,
		       const char *mf, size_t mf_len, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = o->out ? open_memstream(&buf, &len) : stdout;
	int r;

	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = spk_types_write(schema, schema_len, mf, mf_len, f, err, errlen);
	if (o->out) {
		if (fclose(f) != 0 && r == 0) {
			snprintf(err, errlen, "out of memory");
			r = -ENOMEM;
		}
		if (r == 0)
			r = spk_write_file(o->out, buf, len, err, errlen);
		free(buf);
	}
	return r;
}
#endif

int spk_cmd_types(int argc, char **argv)
{
	struct types_opts o = {0};
	int code = types_opts_parse(argc, argv, &o);

	if (code != SPK_OK)
		return code;
#ifdef SPK_HAVE_TYPES
	{
		char err[1024], path[4096], *schema = NULL, *mf = NULL;
		size_t schema_len = 0, mf_len = 0;
		int r = spk_host_api(o.schema, &schema, &schema_len, err, sizeof err);

		if (r == 0 && o.pack_dir) {
			snprintf(path, sizeof path, "%s/manifest.json", o.pack_dir);
			r = spk_read_file(path, 1u << 20, &mf, &mf_len, err, sizeof err);
		}
		if (r == 0)
			r = types_write(&o, schema ? schema : "", schema_len, mf, mf_len, err,
					sizeof err);
		free(schema);
		free(mf);
		return r < 0 ? spk_err(SPK_USAGE, "types: %s", err) : SPK_OK;
	}
#else
	return spk_err(SPK_USAGE, "types: not available in this build (tools/spk/types.c)");
#endif
}
