/*
 * inst_restart — durability of the instances (docs/durability.md): what a
 * create records in the store, and bringing every stored instance back when
 * moonpend starts. Runs in the supervisor.
 */
#ifndef MOONPEN_SUP_INST_RESTART_H
#define MOONPEN_SUP_INST_RESTART_H

#include <stddef.h>

#include "supervisor/inst.h"
#include "supervisor/store.h"

/* Reads every instance of st (NULL: none) and puts it back in is: a running
 * one boots (in its own thread, from its newest snapshot and the inputs after
 * it) as soon as this returns; a quarantined one stays quarantined; one whose
 * pack version is no longer installed is quarantined with that reason (an
 * instance whose pack id is gone altogether is left in the store and
 * logged). Call once, before the API starts. 0, or a negative errno with err
 * filled (the store cannot be read, out of memory). */
int sup_insts_restore_all(sup_insts *is, sst *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
