/*
 * limits — every default numeric limit of moonpen, in one place (all
 * processes). A security reviewer reads this file with policy/seccomp.allow.
 *
 * Values are plain integer constants so that they can be used in printf with
 * %d / %u and in static initializers. Sizes are bytes, times milliseconds
 * unless the name says otherwise. Operators may override some of them
 * (supervisor/config.c says which, with bounds); the rest are fixed by design.
 */
#ifndef MOONPEN_POLICY_LIMITS_H
#define MOONPEN_POLICY_LIMITS_H

/* ---- per-instance script budgets ------------------------------------------ */

/* Lua heap cap per instance: the sandbox allocator refuses past it
 * (memory_limit). Operator default, --memory-bytes. */
#define MP_LUA_MEM_BYTES (16u << 20)

/* Soft deadline per input: when it passes, a hook is armed that raises an
 * uncatchable timeout error at the next Lua instruction. --deadline-ms. */
#define MP_SOFT_DEADLINE_MS 50

/* Hard deadline = soft deadline x this: the supervisor's watchdog SIGKILLs a
 * worker still busy then (C code that runs without hooks). --hard-factor. */
#define MP_HARD_DEADLINE_FACTOR 10

/* Instruction budget per input; 0 means none (no count hook, full speed). */
#define MP_INSTRUCTIONS 0

/* Effects, log lines, Value nesting and ev.emit cascade depth per input
 * (worker.proto Limits). */
#define MP_MAX_EFFECTS 1024
#define MP_MAX_LOGS 256
#define MP_MAX_VALUE_DEPTH 32
#define MP_MAX_EMIT_DEPTH 8

/* ---- worker process rlimits (set by sup_spawn between fork and exec) -------- */

/* Address space the worker needs besides the Lua heap: the executable and its
 * libraries, NNG's threads (one stack reservation of MP_WORKER_STACK_BYTES
 * each: 14 threads on 2 CPUs, about 30 on 16 or more), the glibc heap (the
 * worker sets M_ARENA_MAX to 1: each extra arena would reserve 64 MiB), the
 * Init message (pack + snapshot, MP_WORKER_MSG_MAX_BYTES) held twice while
 * it is decoded, and malloc's overhead on the Lua heap. Measured on 2 CPUs
 * with NNG pair1 + Lua + seccomp, one arena, 2 MiB stacks: 46 MiB of address
 * space at rest. RLIMIT_AS = instance Lua cap + this. */
#define MP_WORKER_AS_MARGIN_BYTES (256ull << 20)

/* RLIMIT_STACK: the main thread's stack (Lua runs there) and, through glibc,
 * the stack every thread reserves up front, which counts against RLIMIT_AS.
 * Lua bounds its C recursion by count (200 levels, "C stack overflow"), not by
 * size: the deepest pcall, gsub, parser, pattern and sort nestings all run in
 * 1 MiB (and crash in 256 KiB); 2 MiB leaves twice that. */
#define MP_WORKER_STACK_BYTES (2ull << 20)

/* RLIMIT_CPU backstop, in CPU seconds over the worker's whole life (soft and
 * hard): only matters if the watchdog itself is wedged. Past it the kernel
 * sends SIGKILL; the instance is restored in a fresh worker. */
#define MP_WORKER_CPU_SECONDS 3600

/* Descriptors: 0, 1, 2, NNG's epoll fd and its wakeup eventfds, the one ipc
 * socket, with room to spare. The worker opens nothing after confinement. */
#define MP_WORKER_NOFILE 32

/* RLIMIT_FSIZE, RLIMIT_CORE and RLIMIT_MEMLOCK are 0: a worker writes no file,
 * dumps no core (it holds an instance's state), locks no memory. */
#define MP_WORKER_FSIZE_BYTES 0
#define MP_WORKER_CORE_BYTES 0
#define MP_WORKER_MEMLOCK_BYTES 0

/* A worker that has not said Hello this long after the spawn is killed. */
#define MP_SPAWN_TIMEOUT_MS 5000

/* ---- transport and messages ---------------------------------------------- */

/* Largest API request the supervisor answers (NNG_OPT_RECVMAXSZ on the API
 * socket). --max-request-bytes, at most MP_TRANSPORT_MAX_BYTES. */
#define MP_MAX_REQUEST_BYTES (1u << 20)

/* Upper bound an operator may raise --max-request-bytes to. */
#define MP_TRANSPORT_MAX_BYTES (64u << 20)

/* Requests the API serves concurrently (NNG contexts). --api-contexts. */
#define MP_API_CONTEXTS 64

/* A built pack: at most this many files, this many bytes in all. */
#define MP_PACK_MAX_FILES 1024
#define MP_PACK_MAX_BYTES (8 << 20)

/* A snapshot of one instance (canonical encoding of its state). */
#define MP_SNAPSHOT_MAX_BYTES (16u << 20)

/* Largest message the worker accepts from the supervisor: an Init carries the
 * pack and the snapshot. */
#define MP_WORKER_MSG_MAX_BYTES (MP_PACK_MAX_BYTES + MP_SNAPSHOT_MAX_BYTES + (1u << 20))

/* Largest reply the supervisor accepts from a worker (a snapshot plus the
 * result); anything bigger costs the worker its life. */
#define MP_WORKER_REPLY_MAX_BYTES (MP_SNAPSHOT_MAX_BYTES + (1u << 20))

/* ---- API requests and instances (checked by supervisor/api.c) ------------- */

/* Largest answer moonpend sends (equal to libmoonpen's MP_RECV_MAX_BYTES):
 * an answer that would be bigger (an ExportTrace or GetIncident trace with a
 * large snapshot and many logged inputs) is replaced by UNAVAILABLE naming
 * its size, never sent for the client to drop. */
#define MP_API_REPLY_MAX_BYTES (64u << 20)

/* instance_id: 1..this bytes of [A-Za-z0-9._:-]. */
#define MP_MAX_ID_BYTES 128
/* Event names, function names, trace ids. */
#define MP_MAX_NAME_BYTES 128
/* Labels on a CreateInstance. */
#define MP_MAX_LABELS 32
/* Arguments of one Call. */
#define MP_MAX_CALL_ARGS 64
/* Ticks advanced by one Tick request (the soft deadline scales with it). */
#define MP_MAX_TICKS_PER_REQUEST 100000
/* Tick length bounds; the default when neither request nor manifest set it. */
#define MP_MAX_TICK_MS 60000
#define MP_DEFAULT_TICK_MS 50
/* Ceilings a manifest cannot raise its own limits past. */
#define MP_MAX_LUA_MEM_BYTES (1ull << 30)
#define MP_MAX_DEADLINE_MS 10000
/* The hard deadline is never below this: a scheduling hiccup of a loaded
 * machine must not cost a healthy worker its life. */
#define MP_HARD_DEADLINE_FLOOR_MS 1000
/* Live instances per supervisor. */
#define MP_MAX_INSTANCES 10000
/* Fresh workers tried when restoring a dead instance, before quarantine. */
#define MP_RESTORE_ATTEMPTS 2
/* Stack of each instance thread in the supervisor. */
#define MP_INST_THREAD_STACK (256u << 10)

/* Bytes one input may hand back (effects and call returns, as encoded): past
 * it the input fails with MEMORY_LIMIT and changes nothing. Well below the
 * supervisor's reply cap (MP_WORKER_REPLY_MAX_BYTES) and libmoonpen's receive
 * cap, so a reply is never lost between the two. */
#define MP_MAX_RESULT_BYTES (8u << 20)

/* Restart intensity (OTP style): more than MP_RESTART_MAX worker restarts of
 * one instance within MP_RESTART_WINDOW_MS quarantine it instead of burning CPU
 * on a crash loop. --restart-max, --restart-window-ms. */
#define MP_RESTART_MAX 5
#define MP_RESTART_WINDOW_MS 60000

/* ---- recovery, queries, durability (supervisor) ------------------------------ */

/* The supervisor takes a snapshot from the worker after this many logged
 * inputs (events, ticks, calls, query answers) and trims the log to the inputs
 * after it. --snapshot-every. */
#define MP_SNAPSHOT_EVERY 64
/* Snapshots kept per instance, newest first (Rollback reaches back this far).
 * --keep-snapshots. */
#define MP_KEEP_SNAPSHOTS 4
/* Warm spare workers: started and confined, waiting for an Init, so that a
 * restore or a create does not wait for fork and exec. --spare-workers. */
#define MP_SPARE_WORKERS 1
/* Instances hosted by one pool worker (packs with "isolation": "pool").
 * --pool-size. */
#define MP_POOL_SIZE 16
/* A query the game server leaves unanswered this long fails its input with
 * TIMEOUT. --query-timeout-ms. */
#define MP_QUERY_TIMEOUT_MS 5000
/* Grouped commits of the durable store: an acknowledgement waits at most this
 * long for the group's single write (and fsync in power mode).
 * --group-commit-ms. */
#define MP_GROUP_COMMIT_MS 2
/* Instances (slots, one lua_State each) one pool worker may host. */
#define MP_WORKER_MAX_SLOTS 1024
/* Per-player rate-limit buckets kept per instance (idle full ones evicted first). */
#define MP_RL_MAX_PLAYERS 4096
/* An input that kills its worker this many times is dead-lettered. */
#define MP_DEAD_LETTER_KILLS 2

#endif
