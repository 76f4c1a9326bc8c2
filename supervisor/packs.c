/*
 * packs — pack registry of moonpend (supervisor). Read at start; immutable
 * afterwards, so lookups need no lock.
 */
#include "supervisor/packs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

struct broken {
	char *name; /* folder name: the best guess of its id */
	char *why;
};

struct sup_packs {
	pack **v;
	unsigned n;
	struct broken *bad;
	unsigned nbad;
};

static int add_broken(sup_packs *ps, const char *name, const char *why)
{
	struct broken *nb = realloc(ps->bad, (ps->nbad + 1) * sizeof *nb);

	if (nb == NULL)
		return -ENOMEM;
	ps->bad = nb;
	nb[ps->nbad].name = strdup(name);
	nb[ps->nbad].why = strdup(why);
	if (!nb[ps->nbad].name || !nb[ps->nbad].why) {
		free(nb[ps->nbad].name);
		free(nb[ps->nbad].why);
		return -ENOMEM;
	}
	ps->nbad++;
	return 0;
}

static int add_pack(sup_packs *ps, pack *p, char *err, unsigned long errlen)
{
	unsigned i;
	pack **nv;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i]->mf->id, p->mf->id) == 0 &&
		    strcmp(ps->v[i]->mf->version, p->mf->version) == 0) {
			snprintf(err, errlen, "pack %s %s is in both %s and %s", p->mf->id,
				 p->mf->version, ps->v[i]->dir, p->dir);
			return -EINVAL;
		}
	nv = realloc(ps->v, (ps->n + 1) * sizeof *nv);
	if (nv == NULL)
		return -ENOMEM;
	ps->v = nv;
	ps->v[ps->n++] = p;
	return 0;
}

static int load_one(sup_packs *ps, const char *dir, const char *name, char *err,
		    unsigned long errlen)
{
	char path[PATH_MAX], manifest[PATH_MAX + 16], why[512];
	struct stat st;
	pack *p = NULL;
	int r;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(manifest, sizeof manifest, "%s/manifest.json", path);
	if (stat(manifest, &st) != 0)
		return 0; /* not a pack folder */
	r = pack_load_dir(path, &p, why, sizeof why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warn("pack %s not loaded: %s", path, why);
		return add_broken(ps, name, why);
	}
	r = add_pack(ps, p, err, errlen);
	if (r < 0) {
		pack_free(p);
		return r;
	}
	log_info("pack %s %s loaded from %s (%zu files, %zu bytes)", p->mf->id, p->mf->version,
		 path, p->n_files, p->bytes);
	return 0;
}

int sup_packs_load(const char *dir, sup_packs **out, char *err, unsigned long errlen)
{
	sup_packs *ps = calloc(1, sizeof *ps);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (ps == NULL)
		return -ENOMEM;
	d = opendir(dir);
	if (d == NULL) {
		r = -errno;
		snprintf(err, errlen, "packs folder %s: %s", dir, strerror(errno));
		sup_packs_free(ps);
		return r;
	}
	while (r == 0 && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			r = load_one(ps, dir, de->d_name, err, errlen);
	closedir(d);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory loading packs");
		sup_packs_free(ps);
		return r;
	}
	*out = ps;
	return 0;
}

void sup_packs_free(sup_packs *ps)
{
	unsigned i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++)
		pack_free(ps->v[i]);
	for (i = 0; i < ps->nbad; i++) {
		free(ps->bad[i].name);
		free(ps->bad[i].why);
	}
	free(ps->v);
	free(ps->bad);
	free(ps);
}

const pack *sup_packs_find(const sup_packs *ps, const char *id, const char *version,
			   const char **why)
{
	const pack *best = NULL;
	unsigned i;

	for (i = 0; i < ps->n; i++) {
		const mf_manifest *m = ps->v[i]->mf;
		if (strcmp(m->id, id) != 0)
			continue;
		if (version && version[0]) {
			if (strcmp(m->version, version) == 0)
				return ps->v[i];
		} else if (best == NULL || mf_version_cmp(m->version, best->mf->version) > 0) {
			best = ps->v[i];
		}
	}
	if (best == NULL && why)
		for (i = 0; i < ps->nbad; i++)
			if (strcmp(ps->bad[i].name, id) == 0)
				*why = ps->bad[i].why;
	return best;
}

unsigned sup_packs_count(const sup_packs *ps)
{
	return ps->n;
}
