/*
 * spk — the pack author's tool: its commands and the helpers they share.
 * Runs on the author's machine, unconfined: pack code is only ever compiled
 * here (lint) or run inside a real confined moonpen-worker (run, replay).
 * Files it reads (packs, events, answers, traces, schemas) are untrusted input.
 *
 * Exit codes of every command: 0 ok, 1 divergence or findings (or a worker
 * killed during run), 2 usage or input error.
 */
#ifndef MOONPEN_SPK_H
#define MOONPEN_SPK_H

#include <stddef.h>
#include <stdint.h>

#define SPK_OK 0
#define SPK_FAIL 1
#define SPK_USAGE 2

/* Commands: argv[0] is the command name ("run"); each returns an exit code. */
int spk_cmd_run(int argc, char **argv);
int spk_cmd_replay(int argc, char **argv);
int spk_cmd_init(int argc, char **argv);
int spk_cmd_lint(int argc, char **argv);
int spk_cmd_types(int argc, char **argv);

/* Prints "spk: <message>" on stderr and returns code. */
int spk_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated
 * buffer. 0 or negative with err ("events.jsonl: No such file or directory"). */
int spk_read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes len bytes to path atomically (a temporary file, then rename).
 * 0 or negative with err. */
int spk_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The host API schema: path when not NULL, else the first that exists of
 * <spk dir>/../../policy/host_api.json (a build tree) and
 * <spk dir>/../share/moonpen/policy/host_api.json (installed); none: an empty
 * schema (*out NULL, *len 0). 0 or negative with err. */
int spk_host_api(const char *path, char **out, size_t *len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Option parsing: when argv[*i] is name, takes argv[*i + 1] into *val,
 * advances *i and returns 1; a missing value is -1; another word is 0. */
int spk_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Parses a decimal unsigned integer in [min, max]. 0 or -EINVAL. */
int spk_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
    __attribute__((warn_unused_result));

#endif
