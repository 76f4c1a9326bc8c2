/*
 * packs — the packs moonpend can instantiate, read once at start from the
 * packs folder (one sub-folder per pack version). Runs in the supervisor;
 * pack contents are author input and were checked by pack_load_dir().
 */
#ifndef MOONPEN_SUP_PACKS_H
#define MOONPEN_SUP_PACKS_H

#include "common/pack.h"

typedef struct sup_packs sup_packs;

/* Loads every sub-folder of dir that holds a manifest.json. A broken pack is
 * logged and skipped (it cannot be instantiated; creating it answers
 * BAD_PACK with the reason); two folders with the same id and version are an
 * error. Returns 0 and *out, or -errno / -EINVAL with err filled. */
int sup_packs_load(const char *dir, sup_packs **out, char *err, unsigned long errlen)
    __attribute__((warn_unused_result));
void sup_packs_free(sup_packs *ps);

/* The pack with this id and version (version NULL or "": the newest), or NULL.
 * When the id is known only as a broken pack, *why (if not NULL) gets the
 * load error. The pack lives as long as ps. */
const pack *sup_packs_find(const sup_packs *ps, const char *id, const char *version,
			   const char **why);

/* Number of loaded packs. */
unsigned sup_packs_count(const sup_packs *ps);

#endif
