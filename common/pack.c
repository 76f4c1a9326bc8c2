/*
 * pack — read a pack folder into memory (supervisor, spk). The folder's
 * contents are author-controlled and untrusted: bounded walk, regular files
 * only, checked paths, bounded sizes.
 */
#include "common/pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/limits.h"

#define PACK_MAX_DEPTH 8

struct walk {
	pack *p;
	size_t cap;
	char *err;
	size_t errlen;
};

int pack_path_ok(const char *path)
{
	size_t n = strlen(path), i, seg = 0;

	if (n == 0 || n > 255 || path[0] == '/')
		return 0;
	for (i = 0; i <= n; i++) {
		char c = path[i];
		if (c == '/' || c == '\0') {
			size_t len = i - seg;
			const char *s = path + seg;
			if (len == 0 || (len == 1 && s[0] == '.') ||
			    (len == 2 && s[0] == '.' && s[1] == '.'))
				return 0;
			seg = i + 1;
		} else if (c < 0x21 || c > 0x7e || c == '\\') {
			return 0;
		}
	}
	return 1;
}

static int read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static int add_file(struct walk *w, const char *rel, const char *full)
{
	pack *p = w->p;
	Moonpen__Worker__V1__PackFile *f;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (p->n_files >= MP_PACK_MAX_FILES) {
		snprintf(w->err, w->errlen, "pack has more than %d files", MP_PACK_MAX_FILES);
		return -EINVAL;
	}
	r = read_file(full, MP_PACK_MAX_BYTES, &data, &len);
	if (r < 0) {
		snprintf(w->err, w->errlen, "%s: %s", rel,
			 r == -EFBIG ? "file too large" : strerror(-r));
		return r == -EFBIG ? -EINVAL : r;
	}
	if (p->bytes + len > MP_PACK_MAX_BYTES) {
		free(data);
		snprintf(w->err, w->errlen, "pack exceeds %d bytes", MP_PACK_MAX_BYTES);
		return -EINVAL;
	}
	if (p->n_files == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 16;
		void *nf = realloc(p->files, ncap * sizeof *p->files);
		if (nf == NULL)
			goto nomem;
		p->files = nf;
		w->cap = ncap;
	}
	f = malloc(sizeof *f);
	if (f == NULL)
		goto nomem;
	moonpen__worker__v1__pack_file__init(f);
	f->path = strdup(rel);
	if (f->path == NULL) {
		free(f);
		goto nomem;
	}
	f->data.data = data;
	f->data.len = len;
	p->files[p->n_files++] = f;
	p->bytes += len;
	return 0;
nomem:
	free(data);
	return -ENOMEM;
}

static int walk_dir(struct walk *w, const char *base, const char *rel, int depth)
{
	char full[PATH_MAX], child[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > PACK_MAX_DEPTH) {
		snprintf(w->err, w->errlen, "%s: folders nested too deep", rel);
		return -EINVAL;
	}
	if ((size_t)snprintf(full, sizeof full, "%s%s%s", base, rel[0] ? "/" : "", rel) >=
	    sizeof full) {
		snprintf(w->err, w->errlen, "%s: path too long", rel);
		return -EINVAL;
	}
	d = opendir(full);
	if (d == NULL) {
		snprintf(w->err, w->errlen, "%s: %s", full, strerror(errno));
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		char path[PATH_MAX];
		if (de->d_name[0] == '.')
			continue; /* hidden files, "." and ".." are never part of a pack */
		if ((size_t)snprintf(child, sizeof child, "%s%s%s", rel, rel[0] ? "/" : "",
				     de->d_name) >= sizeof child ||
		    (size_t)snprintf(path, sizeof path, "%s/%s", base, child) >= sizeof path) {
			snprintf(w->err, w->errlen, "%s: path too long", de->d_name);
			r = -EINVAL;
			break;
		}
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = walk_dir(w, base, child, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			if (!pack_path_ok(child)) {
				snprintf(w->err, w->errlen, "%s: invalid file name in pack", child);
				r = -EINVAL;
			} else {
				r = add_file(w, child, path);
			}
		}
		/* symlinks, devices, sockets: skipped, never followed */
	}
	closedir(d);
	return r;
}

static int cmp_file(const void *a, const void *b)
{
	const Moonpen__Worker__V1__PackFile *const *x = a, *const *y = b;
	return strcmp((*x)->path, (*y)->path);
}

static void pack_hash(pack *p)
{
	crypto_generichash_state st;
	size_t i;

	crypto_generichash_init(&st, NULL, 0, sizeof p->hash);
	for (i = 0; i < p->n_files; i++) {
		uint64_t n = p->files[i]->data.len;
		crypto_generichash_update(&st, (const uint8_t *)p->files[i]->path,
					  strlen(p->files[i]->path) + 1);
		crypto_generichash_update(&st, (const uint8_t *)&n, sizeof n);
		crypto_generichash_update(&st, p->files[i]->data.data, n);
	}
	crypto_generichash_final(&st, p->hash, sizeof p->hash);
}

const Moonpen__Worker__V1__PackFile *pack_file(const pack *p, const char *path)
{
	size_t i;

	for (i = 0; i < p->n_files; i++)
		if (strcmp(p->files[i]->path, path) == 0)
			return p->files[i];
	return NULL;
}

int pack_load_dir(const char *dir, pack **out, char *err, size_t errlen)
{
	struct walk w = {.err = err, .errlen = errlen};
	const Moonpen__Worker__V1__PackFile *mf;
	pack *p = calloc(1, sizeof *p);
	int r;

	err[0] = '\0';
	if (p == NULL || (p->dir = strdup(dir)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	w.p = p;
	r = walk_dir(&w, dir, "", 0);
	if (r < 0)
		goto out;
	if (p->n_files > 1)
		qsort(p->files, p->n_files, sizeof *p->files, cmp_file);
	mf = pack_file(p, "manifest.json");
	if (mf == NULL) {
		snprintf(err, errlen, "%s: no manifest.json", dir);
		r = -EINVAL;
		goto out;
	}
	p->manifest_json = (char *)mf->data.data;
	p->manifest_len = mf->data.len;
	r = mf_parse(p->manifest_json, p->manifest_len, &p->mf, err, errlen);
	if (r < 0)
		goto out;
	if (pack_file(p, p->mf->entry) == NULL) {
		snprintf(err, errlen, "entry '%s' is not a file of the pack", p->mf->entry);
		r = -EINVAL;
		goto out;
	}
	pack_hash(p);
	*out = p;
	p = NULL;
out:
	pack_free(p);
	return r;
}

void pack_free(pack *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n_files; i++)
		protobuf_c_message_free_unpacked(&p->files[i]->base, NULL);
	free(p->files);
	mf_free(p->mf);
	free(p->dir);
	free(p);
}
