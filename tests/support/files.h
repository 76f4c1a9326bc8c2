/*
 * files — test support: read a file of the repository (tests run from its
 * root), count rows of a SQLite file. Test processes only.
 */
#ifndef MOONPEN_TEST_FILES_H
#define MOONPEN_TEST_FILES_H

#include <stddef.h>

/* The whole file (at most 1 MiB), NUL-terminated, malloc'd (free it); *len is
 * its size. A missing file fails the calling Criterion test. */
char *tf_slurp(const char *path, size_t *len);

/* The first column of the first row of sql, an integer query on the SQLite
 * file db_path (opened read-only: with WAL it reads next to a live writer);
 * -1 when there is no row. A bad file or query fails the calling test. */
long long tf_sql_count(const char *db_path, const char *sql);

#endif
