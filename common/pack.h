/*
 * pack — a script pack read from a folder into memory (supervisor, spk).
 *
 * The folder is author-controlled: only regular files are read (symlinks,
 * devices and hidden entries are skipped), paths are checked, and the number
 * of files, their sizes and the nesting depth are bounded (policy/limits.h).
 */
#ifndef MOONPEN_PACK_H
#define MOONPEN_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/manifest.h"
#include "worker.pb-c.h"

typedef struct pack {
	char *dir;
	mf_manifest *mf;
	char *manifest_json; /* the manifest's bytes, as read */
	size_t manifest_len;
	Moonpen__Worker__V1__PackFile **files; /* sorted by path; manifest.json included */
	size_t n_files;
	size_t bytes;	  /* sum of file sizes */
	uint8_t hash[32]; /* BLAKE2b-256 over (path, size, bytes) of every file, in order */
} pack;

/* Reads dir. Returns 0 and *out (free with pack_free), -EINVAL with a message
 * in err (bad manifest, missing entry, a path or size over the limits), or
 * -ENOMEM / -errno of a failed read. */
int pack_load_dir(const char *dir, pack **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void pack_free(pack *p);

/* Nonzero when path is a safe pack-relative path: '/'-separated, no empty,
 * "." or ".." component, no leading '/', printable ASCII, at most 255 bytes. */
int pack_path_ok(const char *path);

/* The file at path, or NULL. */
const Moonpen__Worker__V1__PackFile *pack_file(const pack *p, const char *path);

#endif
