/*
 * val_json — conversion between moonpen.v1.Value trees and JSON (jansson), for
 * moonpenctl, the HTTP API and logs. Runs wherever it is linked; JSON text is
 * untrusted input (depth is bounded, every error is reported).
 *
 * JSON → Value (vjson_from_json, vjson_parse):
 *   null → nil, true/false → bool, integer → int, real → float, string → string
 *   (bytes when it holds a NUL), array → table array part (t[1..n]),
 *   object → table map part with string keys sorted bytewise (strcmp order),
 *   except an object with exactly one member "$bytes" whose value is a string:
 *   that is a bytes value (the inverse of below), and an error when the string
 *   is not standard padded base64.
 *
 * Value → JSON (vjson_to_json) is LOSSY:
 *   nil (or an absent Value) → null, bool → true/false, int → integer,
 *   float → real, but NaN and ±inf → null (JSON has no spelling for them),
 *   string → string, bytes → {"$bytes":"<base64, standard alphabet, padded>"},
 *   a table with no map part (including the empty table) → array,
 *   any other table → object whose members are first the array part under keys
 *   "1","2",... then the map part in stored order under the key's string form:
 *   strings as they are, ints in decimal, floats as "%.17g", booleans as
 *   "true"/"false", bytes keys as their base64. A later key with the same
 *   string form replaces an earlier one; nil, NaN and table keys are dropped.
 *   So int key 1 and string key "1" cannot be told apart, and a float 2.0 read
 *   back from JSON text "2.0" stays a float but "2" becomes an int.
 */
#ifndef MOONPEN_VAL_JSON_H
#define MOONPEN_VAL_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "common/val.h"

/* Converts j (not NULL) into a new tree in *out (free with val_free). Arrays
 * and objects nested deeper than max_depth are refused (a scalar is depth 0,
 * an array or object depth 1), as val_check() counts. Returns 0, -EINVAL with
 * a message naming the path in err ("[2].items: tables nested deeper than 4"),
 * or -ENOMEM. err is always NUL-terminated when errlen > 0. */
int vjson_from_json(const json_t *j, unsigned max_depth, val_t **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parses JSON text (any value at the top level, duplicate object keys refused)
 * and converts it as vjson_from_json() does. A syntax error is -EINVAL with
 * "JSON line L column C: <reason>" in err. */
int vjson_parse(const char *text, unsigned max_depth, val_t **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Converts v (NULL is nil) into a new JSON value (json_decref it), or NULL when
 * out of memory. Recursive: v should have passed val_check(). See above for
 * what the mapping loses. */
json_t *vjson_to_json(const val_t *v);

#endif
