/*
 * wreply — the checks every worker reply passes before the supervisor uses
 * or forwards it (runs in the supervisor; a worker is hostile). Kept apart
 * from wchan.c (the channel, NNG) so that the fuzz harness runs the very
 * same checks.
 */
#ifndef MOONPEN_SUP_WREPLY_H
#define MOONPEN_SUP_WREPLY_H

#include <stdint.h>

#include "worker.pb-c.h"

/* Nonzero when fw is an acceptable answer to the request numbered seq sent to
 * slot: seq and slot echoed, a status with a known code, Values that pass
 * val_check (MP_MAX_VALUE_DEPTH), a state hash of 0 or 32 bytes. Text fields
 * (status message and traceback, effect names, trigger ids, log lines) are
 * made valid UTF-8 in place: a script may raise an error with any bytes, which
 * is not a protocol violation. Zero: the worker is broken or compromised. */
int sup_wreply_ok(Moonpen__Worker__V1__FromWorker *fw, uint64_t seq, uint32_t slot);

#endif
