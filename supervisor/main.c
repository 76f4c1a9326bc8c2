/*
 * moonpend — the moonpen supervisor. Runs as the service; trusts its
 * configuration and its packs folder, nothing that arrives on a socket.
 * It never runs script code: workers do.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/grants.h"
#include "common/log.h"
#include "supervisor/api.h"
#include "supervisor/inst.h"
#include "supervisor/inst_restart.h"
#include "supervisor/store.h"
#include "supervisor/sup.h"

static void fatal(const char *what, const char *why)
{
	log_error("%s: %s", what, why);
	exit(1);
}

/* Blocks the stop signals in every thread; main waits for them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client or worker gone mid-write is an error, not a death */
}

static void make_run_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		fatal(dir, strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		fatal(dir, "not a folder");
	if (chmod(dir, 0700) != 0) /* worker sockets live here: owner only */
		fatal(dir, strerror(errno));
}

/* Reads a policy file of at most max bytes (NUL-terminated copy) or dies. */
static char *load_policy(const char *path, long max, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > max ||
	    fseek(f, 0, SEEK_SET) != 0)
		fatal(path, f ? "unreadable or too large" : strerror(errno));
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		fatal(path, "read failed");
	buf[n] = '\0';
	*len = (size_t)n;
	fclose(f);
	return buf;
}

static void load_policies(sup *s)
{
	char err[512];
	size_t n;
	char *g;

	s->host_api = load_policy(s->cfg.host_api, 1 << 20, &s->host_api_len);
	g = load_policy(s->cfg.grants, GRANTS_MAX_BYTES, &n);
	if (grants_parse(g, n, &s->grants, err, sizeof err) < 0)
		fatal(s->cfg.grants, err);
	free(g);
}

/* Opens the store of --state-dir in --durability mode ("memory": none), or
 * dies with the reason (a corrupt file, another moonpend on the folder). */
static void open_store(sup *s)
{
	char err[512];
	int r = sst_open(s->cfg.state_dir, s->cfg.durability, s->cfg.group_commit_ms,
			 s->cfg.keep_snapshots, &s->store, err, sizeof err);

	if (r < 0)
		fatal(s->cfg.state_dir, err);
	sst_set_history(s->store, 1); /* inputs back to the oldest kept snapshot (Rollback) */
	log_info("store: %s (durability %s)", s->store ? s->cfg.state_dir : "none",
		 s->cfg.durability);
}

int main(int argc, char **argv)
{
	static sup s;
	char err[1024];
	sigset_t set;
	int sig = 0, r;

	/* 1. settings: defaults, --config file, flags */
	r = sup_config_load(&s.cfg, argc, argv, err, sizeof err);
	if (r != 0) {
		if (r < 0)
			fprintf(stderr, "moonpend: %s\n", err);
		sup_config_usage(stderr);
		return r < 0 ? 2 : 0;
	}
	log_init("sup", (enum log_level)s.cfg.log_level);
	/* 2. signals: SIGTERM/SIGINT are waited for by main only */
	block_signals(&set);
	/* 3. runtime folder (0700); the state folder is the store's (step 5) */
	make_run_dir(s.cfg.run_dir);
	/* 4. the operator's host API schema and the packs */
	load_policies(&s);
	if (sup_packs_load(s.cfg.packs, &s.packs, err, sizeof err) < 0)
		fatal("packs", err);
	/* 5. the durable store (docs/durability.md): moonpend never runs over a store
	 *    it cannot read, nor beside another moonpend on the same folder */
	open_store(&s);
	/* 6. instances (with the spawner thread and its warm spare workers), those
	 *    of the store first, then the API (requests may arrive as soon as it
	 *    listens; those for a restarted instance wait until it has booted) */
	if (sup_insts_new(&s, &s.insts) < 0)
		fatal("instances", "out of memory");
	if (sup_insts_restore_all(s.insts, s.store, err, sizeof err) < 0)
		fatal("store", err);
	if (sup_api_start(&s, &s.api, err, sizeof err) < 0)
		fatal("api", err);
	if (s.cfg.worker_wrapper[0])
		log_warn(
		    "DEBUG MODE: workers run under '%s' WITHOUT seccomp and RLIMIT_AS; never in "
		    "production",
		    s.cfg.worker_wrapper);
	log_info("moonpend serving on %s (%u packs, worker %s)", s.cfg.listen,
		 sup_packs_count(s.packs), s.cfg.worker);
	/* 7. serve until told to stop */
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		log_info("SIGHUP ignored (reload is not supported yet)");
	/* 8. clean shutdown: refuse new work, stop instances and workers, close the API
	 *    and the store (which keeps every instance for the next start) */
	log_info("signal %d: shutting down", sig);
	atomic_store(&s.stopping, 1);
	sup_insts_shutdown(s.insts);
	sup_api_stop(s.api);
	sst_close(s.store);
	sup_packs_free(s.packs);
	free(s.host_api);
	grants_free(s.grants);
	log_info("moonpend stopped");
	return 0;
}
