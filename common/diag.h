/*
 * diag — building error messages for untrusted input (every process): a
 * bounded "where" path ("payload.items[3]") and a one-line formatter. Trusts
 * its callers; truncates, never overflows.
 */
#ifndef MOONPEN_DIAG_H
#define MOONPEN_DIAG_H

#include <stddef.h>

#define DIAG_PATH_MAX 192 /* longest path kept; longer ones end in "..." */

typedef struct diag_path {
	char buf[DIAG_PATH_MAX]; /* NUL-terminated */
	size_t len;
} diag_path;

/* Appends a printf-formatted segment; returns the old length for
 * diag_path_pop(). A path that no longer fits ends in "...". */
size_t diag_path_push(diag_path *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Cuts the path back to the length diag_path_push() returned. */
void diag_path_pop(diag_path *p, size_t old);
/* The path, or "(root)" when empty. */
const char *diag_path_str(const diag_path *p);

/* Writes the formatted message into err (when errlen > 0) and returns -EINVAL:
 * `return diag_fail(err, errlen, "field '%s': ...", name);` */
int diag_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
