/*
 * jsonx — strict checks shared by the parsers of operator JSON files. Runs
 * wherever they run; trusts nothing in the JSON it is given.
 */
#include <errno.h>
#include <string.h>

#include "common/diag.h"
#include "common/jsonx.h"

int jsonx_check_keys(json_t *obj, const char *const *allowed, const char *path, char *err,
		     size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		const char *const *a = allowed;
		(void)v;
		while (*a != NULL && strcmp(*a, key) != 0)
			a++;
		if (*a == NULL)
			return diag_fail(err, errlen, "%s: unknown key \"%s\"", path, key);
	}
	return 0;
}

int jsonx_check_v1(json_t *root, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, "version");

	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return diag_fail(err, errlen, "version: expected 1");
	v = json_object_get(root, "description");
	if (v != NULL && !json_is_string(v))
		return diag_fail(err, errlen, "description: expected a string");
	return 0;
}
