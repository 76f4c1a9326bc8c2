/*
 * files — test support: read a file of the repository (tests run from its
 * root). Test processes only.
 */
#ifndef MOONPEN_TEST_FILES_H
#define MOONPEN_TEST_FILES_H

#include <stddef.h>

/* The whole file (at most 1 MiB), NUL-terminated, malloc'd (free it); *len is
 * its size. A missing file fails the calling Criterion test. */
char *tf_slurp(const char *path, size_t *len);

#endif
