/*
 * val — helpers for moonpen.v1.Value trees (both processes and the client).
 *
 * A Value tree is a protobuf-c message tree whose every node, string and
 * repeated array was allocated with malloc(): free it with val_free(), which
 * calls protobuf_c_message_free_unpacked(). Trees decoded from the wire are
 * untrusted until val_check() accepted them.
 */
#ifndef MOONPEN_VAL_H
#define MOONPEN_VAL_H

#include <stddef.h>
#include <stdint.h>

#include "moonpen.pb-c.h"

typedef Moonpen__V1__Value val_t;

#define VAL_MAX_DEPTH_DEFAULT 32 /* table nesting accepted by default */

/* Constructors: a new node, or NULL when out of memory. */
val_t *val_new_nil(void);
val_t *val_new_bool(int b);
val_t *val_new_int(int64_t i);
val_t *val_new_float(double d);
/* Copies len bytes: a string_value when they are valid UTF-8, else bytes_value. */
val_t *val_new_string(const char *s, size_t len);
val_t *val_new_bytes(const void *p, size_t len);
val_t *val_new_table(void);

/* Appends item to t's array part / a key-value pair to its map part. Takes
 * ownership of item (key, value) on success only. Returns 0 or -ENOMEM
 * (-EINVAL when t is not a table). */
int val_table_push(val_t *t, val_t *item) __attribute__((warn_unused_result));
int val_table_set(val_t *t, val_t *key, val_t *value) __attribute__((warn_unused_result));

/* Deep copy, or NULL when out of memory. */
val_t *val_copy(const val_t *v);
/* Frees a whole tree (NULL is fine). */
void val_free(val_t *v);

/* Checks an untrusted tree: nesting at most max_depth tables, every string_value
 * valid UTF-8, map keys neither nil nor NaN nor tables. Returns 0, or -EINVAL with
 * a message in err (always NUL-terminated when errlen > 0). */
int val_check(const val_t *v, unsigned max_depth, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Nonzero when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int val_utf8_valid(const char *s, size_t len);
/* Makes the NUL-terminated s valid UTF-8 in place: each byte that does not
 * start a valid sequence becomes '?'. NULL is fine. */
void val_utf8_scrub(char *s);

/* Nonzero when a and b are the same value (tables compared element-wise, in order). */
int val_equal(const val_t *a, const val_t *b);

#endif
