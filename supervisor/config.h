/*
 * config — moonpend's settings: built-in defaults, then the configuration file
 * (--config FILE, `key = value` lines, `#` comments), then the command line,
 * each overriding the one before. Every flag has a file key of the same name
 * with '-' spelled '_' (--run-dir / run_dir). Runs in the supervisor; the file
 * and the flags come from the operator and are checked all the same.
 */
#ifndef MOONPEN_SUP_CONFIG_H
#define MOONPEN_SUP_CONFIG_H

#include <limits.h>
#include <stdint.h>

typedef struct sup_config {
	char listen[512];	  /* API URL (REQ/REP); default ipc://<run_dir>/api.sock */
	char packs[PATH_MAX];	  /* packs folder: one sub-folder per pack */
	char run_dir[PATH_MAX];	  /* sockets of the API and the workers (mode 0700) */
	char state_dir[PATH_MAX]; /* durable store */
	char worker[PATH_MAX];	  /* moonpen-worker executable */
	char host_api[PATH_MAX];  /* host API schema (policy/host_api.json) */
	char grants[PATH_MAX];	  /* which packs may use which APIs (policy/grants.json) */
	char require_layers[256]; /* "seccomp,net_ns": a worker without all of them is refused */
	char worker_wrapper[PATH_MAX]; /* debug: "valgrind --log-file=..." put before the
					* worker, which then runs WITHOUT seccomp and
					* RLIMIT_AS; empty in production */
	unsigned api_contexts;	       /* requests served concurrently */
	uint64_t mem_bytes;	       /* default Lua heap cap per instance */
	uint32_t deadline_ms;	       /* default soft deadline per input */
	uint32_t hard_factor;	       /* hard deadline = soft deadline x this */
	uint32_t spawn_timeout_ms;
	uint32_t restart_max;	    /* restarts allowed within restart_window_ms */
	uint32_t restart_window_ms; /* ... past them the instance is quarantined */
	uint32_t max_request_bytes;
	uint32_t snapshot_every;   /* logged inputs between two snapshots */
	uint32_t keep_snapshots;   /* snapshots kept per instance (rollback depth) */
	uint32_t spare_workers;	   /* warm, confined workers waiting for an Init */
	uint32_t pool_size;	   /* instances per pool worker */
	uint32_t query_timeout_ms; /* unanswered query -> the input fails TIMEOUT */
	uint32_t group_commit_ms;  /* longest wait for a grouped durable commit */
	char durability[16];	   /* "memory" | "process" | "power" */
	int log_level;		   /* enum log_level */
} sup_config;

/* Fills c from defaults, the file named by --config (if any) and argv.
 * Returns 0; 1 when --help was asked (usage printed); -EINVAL with a message
 * in err for a bad flag, key or value. */
int sup_config_load(sup_config *c, int argc, char **argv, char *err, unsigned long errlen)
    __attribute__((warn_unused_result));

/* Prints the flags to stream f (a FILE *). */
void sup_config_usage(void *f);

#endif
