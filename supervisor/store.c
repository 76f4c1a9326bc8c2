/*
 * store — moonpend's durable store in SQLite (WAL). Runs in the supervisor.
 * Trusts its callers' arguments (checked by api.c and inst.c; sizes and ids
 * are checked again here); reads the database file back defensively: it may
 * be corrupt, foreign or edited by hand.
 *
 * Threads: write calls queue a request on st->mu and wait on st->done_cv; the
 * writer thread takes every queued request, runs each inside its own
 * savepoint of one transaction, commits, and wakes the callers. The write
 * connection is the writer's alone (after sst_open); sst_load reads through a
 * second, read-only one of its own. No SQL is built from data: every
 * statement is prepared once with parameters.
 */
#include "supervisor/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "policy/limits.h"

/* PRAGMA application_id: 'MPND'. A SQLite file without it is not ours. */
#define SST_APP_ID 0x4d504e44
/* How long a statement waits for a lock held by another connection (an
 * operator's sqlite3 shell) before failing with -EBUSY. */
#define SST_BUSY_MS 5000
/* Largest input or snapshot accepted (SQLite's own limit is 1e9 bytes;
 * snapshots are capped far lower, at MP_SNAPSHOT_MAX_BYTES). */
#define SST_MAX_BLOB (256u << 20)
/* Cap on the WAL file kept after a checkpoint. */
#define SST_WAL_LIMIT (64 * 1024 * 1024)

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVE,
	S_RELEASE,
	S_UNDO,
	S_PACK_INS,
	S_PACK_GET,
	S_INST_PUT,
	S_INST_STATUS,
	S_INST_DEL,
	S_SNAP_DEL,
	S_INPUT_DEL,
	S_DEAD_DEL,
	S_INPUT_INS,
	S_INPUT_TRUNC,
	S_SNAP_TRUNC,
	S_SNAP_PUT,
	S_INPUT_COVERED,
	S_INPUT_OLDEST,
	S_SNAP_TRIM,
	S_DEAD_INS,
	S_INC_PUT,
	S_INC_DEL,
	NSTMT
};

static const char *const stmt_sql[NSTMT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVE] = "SAVEPOINT op",
    [S_RELEASE] = "RELEASE op",
    [S_UNDO] = "ROLLBACK TO op",
    [S_PACK_INS] = "INSERT INTO packs(id, version, hash, first_seen) VALUES(?1, ?2, ?3, ?4) "
		   "ON CONFLICT(id, version) DO NOTHING",
    [S_PACK_GET] = "SELECT hash FROM packs WHERE id = ?1 AND version = ?2",
    [S_INST_PUT] = "INSERT INTO instances(id, pack_id, pack_version, seed, tick_ms, labels, "
		   "status, reason, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
		   "ON CONFLICT(id) DO UPDATE SET pack_id = excluded.pack_id, "
		   "pack_version = excluded.pack_version, seed = excluded.seed, "
		   "tick_ms = excluded.tick_ms, labels = excluded.labels, "
		   "status = excluded.status, reason = excluded.reason",
    [S_INST_STATUS] = "UPDATE instances SET status = ?2, reason = ?3 WHERE id = ?1",
    [S_INST_DEL] = "DELETE FROM instances WHERE id = ?1",
    [S_SNAP_DEL] = "DELETE FROM snapshots WHERE instance = ?1",
    [S_INPUT_DEL] = "DELETE FROM inputs WHERE instance = ?1",
    [S_DEAD_DEL] = "DELETE FROM dead_letters WHERE instance = ?1",
    [S_INPUT_INS] = "INSERT INTO inputs(instance, idx, data) VALUES(?1, ?2, ?3)",
    [S_INPUT_TRUNC] = "DELETE FROM inputs WHERE instance = ?1 AND idx >= ?2",
    [S_SNAP_TRUNC] = "DELETE FROM snapshots WHERE instance = ?1 AND input > ?2",
    [S_SNAP_PUT] = "INSERT OR REPLACE INTO snapshots(instance, input, tick, state_hash, blob) "
		   "VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_INPUT_COVERED] = "DELETE FROM inputs WHERE instance = ?1 AND idx < ?2",
    [S_INPUT_OLDEST] = "DELETE FROM inputs WHERE instance = ?1 AND idx < "
		       "(SELECT min(input) FROM snapshots WHERE instance = ?1)",
    [S_SNAP_TRIM] = "DELETE FROM snapshots WHERE instance = ?1 AND input NOT IN "
		    "(SELECT input FROM snapshots WHERE instance = ?1 "
		    "ORDER BY input DESC LIMIT ?2)",
    [S_DEAD_INS] = "INSERT INTO dead_letters(instance, input, tick, kind, name, code, message) "
		   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_INC_PUT] = "INSERT OR REPLACE INTO incidents(instance, at, code, trace) "
		  "VALUES(?1, ?2, ?3, ?4)",
    [S_INC_DEL] = "DELETE FROM incidents WHERE instance = ?1",
};

/* Schema version 1, the tables every version has. Child rows go with their
 * instance (foreign keys). */
static const char schema_sql[] =
    "CREATE TABLE packs(id TEXT NOT NULL, version TEXT NOT NULL, hash BLOB NOT NULL, "
    "  first_seen INTEGER NOT NULL, PRIMARY KEY(id, version)) WITHOUT ROWID;"
    "CREATE TABLE instances(id TEXT PRIMARY KEY NOT NULL, pack_id TEXT NOT NULL, "
    "  pack_version TEXT NOT NULL, seed INTEGER NOT NULL, tick_ms INTEGER NOT NULL, "
    "  labels BLOB NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, "
    "  created INTEGER NOT NULL);"
    "CREATE TABLE snapshots(instance TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE, "
    "  input INTEGER NOT NULL, tick INTEGER NOT NULL, state_hash BLOB NOT NULL, "
    "  blob BLOB NOT NULL, PRIMARY KEY(instance, input));"
    "CREATE TABLE inputs(instance TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE, "
    "  idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(instance, idx)) WITHOUT ROWID;"
    "CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, "
    "  instance TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE, "
    "  input INTEGER NOT NULL, tick INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, "
    "  code INTEGER NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX dead_letters_instance ON dead_letters(instance, seq);";

/* Schema version 2 adds the flight recorder: the newest incident of each
 * instance (its rendered trace, docs/recovery.md). A version 1 file gets it
 * at open (migrate_v1). */
static const char incidents_sql[] =
    "CREATE TABLE incidents(instance TEXT PRIMARY KEY REFERENCES instances(id) "
    "  ON DELETE CASCADE, at INTEGER NOT NULL, code INTEGER NOT NULL, trace BLOB NOT NULL);";

enum op_kind {
	OP_PACK,
	OP_PUT,
	OP_STATUS,
	OP_DROP,
	OP_APPEND,
	OP_TRUNC,
	OP_SNAP,
	OP_DEAD,
	OP_INCIDENT
};

static const char *const op_name[] = {
    [OP_PACK] = "note pack",	 [OP_PUT] = "put instance",	[OP_STATUS] = "set status",
    [OP_DROP] = "drop instance", [OP_APPEND] = "append input",	[OP_TRUNC] = "truncate",
    [OP_SNAP] = "put snapshot",	 [OP_DEAD] = "put dead letter", [OP_INCIDENT] = "put incident",
};

/* One write call, on its caller's stack; the caller waits until done. */
struct op {
	struct op *next;
	enum op_kind kind;
	const char *id;
	uint64_t a, b;	     /* index / from / input; tick */
	const uint8_t *data; /* input, snapshot blob, encoded labels, incident trace */
	size_t len;
	const uint8_t *hash;
	const char *s1, *s2; /* pack version / reason */
	const sst_instance *in;
	const sst_dead_letter *dl;
	int flag; /* reset / status / incident code */
	int r;
	int done;
};

struct sst {
	char path[PATH_MAX];
	sqlite3 *db; /* the writer's */
	sqlite3_stmt *stmt[NSTMT];
	unsigned keep;
	atomic_int history; /* inputs kept back to the oldest kept snapshot (sst_set_history) */
	uint32_t group_ms;
	int lock_fd;
	dev_t lock_dev; /* the lock file, registered in held[] while locked */
	ino_t lock_ino;

	pthread_mutex_t mu; /* the queue, the counters */
	pthread_cond_t work_cv, done_cv;
	struct op *head, *tail;
	size_t queued;
	uint64_t first_ns; /* when the oldest queued request arrived */
	uint64_t group_ns; /* how long the previous group took to commit */
	size_t last_group; /* requests in the previous commit */
	int closing;
	pthread_t writer;
	sst_stats stats;
};

/* ---- errors and small helpers ------------------------------------------------------- */

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? -ENOENT : -EEXIST;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_FORMAT:
		return -EBADMSG;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_CANTOPEN:
		return -EACCES;
	default:
		return -EIO;
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int check_id(const char *id)
{
	size_t n;

	if (id == NULL)
		return -EINVAL;
	n = strlen(id);
	return n == 0 || n > MP_MAX_ID_BYTES ? -EINVAL : 0;
}

/* SQLite binds a NULL pointer as SQL NULL: an empty blob needs a real one. */
static int bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
	return sqlite3_bind_blob64(s, i, len ? p : "", len, SQLITE_STATIC);
}

static int bind_text(sqlite3_stmt *s, int i, const char *t)
{
	return sqlite3_bind_text(s, i, t ? t : "", -1, SQLITE_STATIC);
}

/* Steps s once (a statement without rows, or the first row ignored), resets
 * it. Returns the SQLite result code. */
static int exec1(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* Runs SQL without parameters or results (schema, pragmas). */
static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return map_rc(rc) ? map_rc(rc) : -EIO;
	}
	return 0;
}

/* The integer or text result of a one-row pragma. */
static int pragma_get(sqlite3 *db, const char *sql, int64_t *num, char *text, size_t textlen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			if (num)
				*num = sqlite3_column_int64(s, 0);
			if (text) {
				const unsigned char *t = sqlite3_column_text(s, 0);
				snprintf(text, textlen, "%s", t ? (const char *)t : "");
			}
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_CORRUPT; /* a pragma that gives no row */
		}
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- the state folder ---------------------------------------------------------------- */

/* mkdir -p with mode 0700 for every folder it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	struct stat sb;
	size_t i, n = strlen(dir);

	if (n == 0 || n >= sizeof buf) {
		snprintf(err, errlen, "bad state folder '%s'", dir);
		return -EINVAL;
	}
	memcpy(buf, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			snprintf(err, errlen, "mkdir %s: %s", buf, strerror(e));
			return -e;
		}
		buf[i] = i < n ? '/' : '\0';
	}
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s is not a folder", dir);
		return -ENOTDIR;
	}
	return 0;
}

/* One moonpend per state folder: an exclusive POSIX record lock on
 * <dir>/moonpen.lock, released by the kernel when the process dies. Not flock:
 * a flock belongs to the open file description, which a worker forked a
 * moment before moonpend was killed still shares until it closes its
 * descriptors, so a restarted moonpend could find it taken; a record lock
 * belongs to this process alone. A process does not conflict with its own
 * record locks, so the lock files this process holds are also listed here. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	dev_t dev;
	ino_t ino;
} held[16];
static unsigned n_held;

/* 1 and registered when no store of this process holds (dev, ino); else 0. */
static int hold(dev_t dev, ino_t ino)
{
	unsigned i;
	int ok = n_held < sizeof held / sizeof held[0];

	pthread_mutex_lock(&held_mu);
	for (i = 0; ok && i < n_held; i++)
		if (held[i].dev == dev && held[i].ino == ino)
			ok = 0;
	if (ok) {
		held[n_held].dev = dev;
		held[n_held++].ino = ino;
	}
	pthread_mutex_unlock(&held_mu);
	return ok;
}

static void unhold(dev_t dev, ino_t ino)
{
	unsigned i;

	pthread_mutex_lock(&held_mu);
	for (i = 0; i < n_held; i++)
		if (held[i].dev == dev && held[i].ino == ino) {
			held[i] = held[--n_held];
			break;
		}
	pthread_mutex_unlock(&held_mu);
}

static int lock_dir(sst *st, const char *dir, char *err, size_t errlen)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat sb;
	char p[PATH_MAX];
	int fd, e = 0;

	if ((size_t)snprintf(p, sizeof p, "%s/moonpen.lock", dir) >= sizeof p)
		return -ENAMETOOLONG;
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		e = errno;
		snprintf(err, errlen, "open %s: %s", p, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!hold(sb.st_dev, sb.st_ino))
		e = EBUSY;
	else if (fcntl(fd, F_SETLK, &fl) < 0) {
		e = errno == EACCES || errno == EAGAIN ? EBUSY : errno;
		unhold(sb.st_dev, sb.st_ino);
	}
	if (e != 0) {
		close(fd);
		snprintf(err, errlen, "%s: %s", p,
			 e == EBUSY ? "another moonpend uses this state folder" : strerror(e));
		return -e;
	}
	st->lock_fd = fd;
	st->lock_dev = sb.st_dev;
	st->lock_ino = sb.st_ino;
	return 0;
}

/* Creates the database file 0600 (SQLite would use 0644 less the umask; its
 * -wal and -shm files copy the database file's mode). */
static int make_db_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s is not a regular file", path);
		return -EINVAL;
	}
	close(fd);
	return 0;
}

/* ---- opening: connections, checks, schema ------------------------------------------- */

static int open_conn(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen)
{
	int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return map_rc(rc) ? map_rc(rc) : -EIO;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, SST_BUSY_MS);
	*out = db;
	return 0;
}

/* Refuses a file that is not a moonpen store of a schema this build knows
 * (this one, or version 1: *old set, migrated by setup_db), and a corrupt
 * one. Sets *fresh for an empty database. */
static int check_file(sqlite3 *db, const char *path, int *fresh, int *old, char *err, size_t errlen)
{
	int64_t app = 0, ver = 0, tables = 0;
	char ok[256];
	int rc = pragma_get(db, "PRAGMA application_id", &app, NULL, 0);

	if (rc == SQLITE_OK)
		rc = pragma_get(db, "PRAGMA user_version", &ver, NULL, 0);
	if (rc == SQLITE_OK)
		rc = pragma_get(db, "SELECT count(*) FROM sqlite_master", &tables, NULL, 0);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: not a moonpen store: %s", path, sqlite3_errmsg(db));
		return map_rc(rc) == -EBADMSG ? -EBADMSG : map_rc(rc);
	}
	*fresh = app == 0 && ver == 0 && tables == 0;
	if (*fresh)
		return 0;
	if (app != SST_APP_ID) {
		snprintf(err, errlen,
			 "%s: not a moonpen store (a SQLite database of another application, "
			 "application_id %lld)",
			 path, (long long)app);
		return -EBADMSG;
	}
	*old = ver == 1;
	if (ver != SST_SCHEMA_VERSION && !*old) {
		snprintf(err, errlen, "%s: store schema version %lld, this moonpend knows %d", path,
			 (long long)ver, SST_SCHEMA_VERSION);
		return -EBADMSG;
	}
	rc = pragma_get(db, "PRAGMA quick_check(1)", NULL, ok, sizeof ok);
	if (rc != SQLITE_OK || strcmp(ok, "ok") != 0) {
		snprintf(err, errlen, "%s: corrupt store: %s", path,
			 rc != SQLITE_OK ? sqlite3_errmsg(db) : ok);
		return -EBADMSG;
	}
	return 0;
}

/* Runs the n schema scripts sql[] and sets the schema version, in one
 * transaction; with only_v1, nothing changes unless the file is still of
 * version 1 once the transaction holds the write lock. */
static int schema_tx(sqlite3 *db, const char *const *sql, size_t n, int only_v1, char *err,
		     size_t errlen)
{
	char set[96];
	int64_t ver = 0;
	size_t i;
	int rc, go = 1, r = exec_sql(db, "BEGIN IMMEDIATE", err, errlen);

	if (r == 0 && only_v1) {
		rc = pragma_get(db, "PRAGMA user_version", &ver, NULL, 0);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(db));
			r = map_rc(rc) ? map_rc(rc) : -EIO;
		}
		go = ver == 1;
	}
	snprintf(set, sizeof set, "PRAGMA application_id=%d; PRAGMA user_version=%d;", SST_APP_ID,
		 SST_SCHEMA_VERSION);
	for (i = 0; r == 0 && go && i <= n; i++)
		r = exec_sql(db, i < n ? sql[i] : set, err, errlen);
	if (r == 0)
		r = exec_sql(db, "COMMIT", err, errlen);
	if (r < 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* A fresh file gets every table; a version 1 file (the previous release)
 * gets the incidents table, in place. */
static int make_schema(sst *st, int fresh, char *err, size_t errlen)
{
	const char *const all[] = {schema_sql, incidents_sql};
	int r;

	if (fresh)
		return schema_tx(st->db, all, 2, 0, err, errlen);
	r = schema_tx(st->db, all + 1, 1, 1, err, errlen);
	if (r == 0)
		log_info("store: %s migrated from schema version 1 to %d", st->path,
			 SST_SCHEMA_VERSION);
	return r;
}

static int setup_db(sst *st, const char *durability, char *err, size_t errlen)
{
	char mode[32];
	char sql[160];
	int fresh = 0, old = 0;
	int r = check_file(st->db, st->path, &fresh, &old, err, errlen);

	if (r < 0)
		return r;
	if (pragma_get(st->db, "PRAGMA journal_mode=WAL", NULL, mode, sizeof mode) != SQLITE_OK ||
	    strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot use WAL mode: %s", st->path,
			 sqlite3_errmsg(st->db));
		return -EIO;
	}
	snprintf(sql, sizeof sql,
		 "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=%d;",
		 strcmp(durability, "power") == 0 ? "FULL" : "NORMAL", SST_WAL_LIMIT);
	r = exec_sql(st->db, sql, err, errlen);
	if (r < 0 || (!fresh && !old))
		return r;
	return make_schema(st, fresh, err, errlen);
}

static int prepare_all(sst *st, char *err, size_t errlen)
{
	int i, rc;

	for (i = 0; i < NSTMT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&st->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
			return map_rc(rc) ? map_rc(rc) : -EIO;
		}
	}
	return 0;
}

static void *writer_main(void *arg);

static void free_store(sst *st)
{
	int i;

	for (i = 0; i < NSTMT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		log_error("store: closing %s: %s", st->path, sqlite3_errmsg(st->db));
	if (st->lock_fd >= 0) {
		close(st->lock_fd); /* releases the record lock */
		unhold(st->lock_dev, st->lock_ino);
	}
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->work_cv);
	pthread_cond_destroy(&st->done_cv);
	free(st);
}

static sst *alloc_store(uint32_t group_commit_ms, unsigned keep)
{
	pthread_condattr_t ca;
	sst *st = calloc(1, sizeof *st);

	if (st == NULL)
		return NULL;
	st->lock_fd = -1;
	st->keep = keep;
	st->group_ms = group_commit_ms;
	pthread_mutex_init(&st->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the gather deadline */
	pthread_cond_init(&st->work_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&st->done_cv, NULL);
	return st;
}

static int open_files(sst *st, const char *dir, const char *durability, char *err, size_t errlen)
{
	int r = make_dirs(dir, err, errlen);

	if (r == 0 && (size_t)snprintf(st->path, sizeof st->path, "%s/" SST_DB_NAME, dir) >=
			  sizeof st->path) {
		snprintf(err, errlen, "state folder path too long");
		r = -ENAMETOOLONG;
	}
	if (r == 0)
		r = lock_dir(st, dir, err, errlen);
	if (r == 0)
		r = make_db_file(st->path, err, errlen);
	if (r == 0)
		r = open_conn(st->path, 0, &st->db, err, errlen);
	if (r == 0)
		r = setup_db(st, durability, err, errlen);
	if (r == 0)
		r = prepare_all(st, err, errlen);
	return r;
}

int sst_open(const char *dir, const char *durability, uint32_t group_commit_ms,
	     unsigned keep_snapshots, sst **out, char *err, size_t errlen)
{
	sst *st;
	int r;

	*out = NULL;
	if (strcmp(durability, "memory") == 0)
		return 0;
	if ((strcmp(durability, "process") != 0 && strcmp(durability, "power") != 0) ||
	    keep_snapshots == 0 || group_commit_ms > 60000) {
		snprintf(err, errlen, "bad store settings (durability '%s', keep %u)", durability,
			 keep_snapshots);
		return -EINVAL;
	}
	st = alloc_store(group_commit_ms, keep_snapshots);
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = open_files(st, dir, durability, err, errlen);
	if (r == 0 && (r = -pthread_create(&st->writer, NULL, writer_main, st)) < 0)
		snprintf(err, errlen, "cannot start the store's writer thread: %s", strerror(-r));
	if (r < 0) {
		free_store(st);
		return r;
	}
	*out = st;
	return 0;
}

/* ---- labels: (u32 le length, bytes) for each key, then its value ---------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int labels_encode(const sst_label *l, size_t n, uint8_t **out, size_t *outlen)
{
	size_t i, len = 0, off = 0;
	uint8_t *b;

	for (i = 0; i < n; i++) {
		if (!l[i].key || !l[i].value || strlen(l[i].key) > UINT32_MAX ||
		    strlen(l[i].value) > UINT32_MAX)
			return -EINVAL;
		len += 8 + strlen(l[i].key) + strlen(l[i].value);
	}
	b = malloc(len ? len : 1);
	if (b == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const char *s[2] = {l[i].key, l[i].value};
		for (int k = 0; k < 2; k++) {
			size_t sl = strlen(s[k]);
			put_u32(b + off, (uint32_t)sl);
			memcpy(b + off + 4, s[k], sl);
			off += 4 + sl;
		}
	}
	*out = b;
	*outlen = len;
	return 0;
}

/* Decodes into *labels (one allocation holding the array and the strings:
 * free(*labels)). -EBADMSG when the bytes do not parse. */
static int labels_decode(const uint8_t *b, size_t len, sst_label **labels, size_t *n)
{
	size_t off = 0, cnt = 0, i;
	sst_label *l;
	char *strs;

	while (off < len) { /* first pass: count and check */
		for (int k = 0; k < 2; k++) {
			if (len - off < 4 || get_u32(b + off) > len - off - 4)
				return -EBADMSG;
			off += 4 + get_u32(b + off);
		}
		cnt++;
	}
	l = malloc(cnt * sizeof *l + len + 1);
	if (l == NULL)
		return -ENOMEM;
	strs = (char *)(l + cnt);
	for (i = 0, off = 0; i < cnt; i++) {
		const char **dst[2] = {&l[i].key, &l[i].value};
		for (int k = 0; k < 2; k++) {
			uint32_t sl = get_u32(b + off);
			memcpy(strs, b + off + 4, sl);
			strs[sl] = '\0';
			*dst[k] = strs;
			strs += sl + 1;
			off += 4 + sl;
		}
	}
	*labels = l;
	*n = cnt;
	return 0;
}

/* ---- the writer: one transaction per group of requests --------------------------------- */

static sqlite3_stmt *stmt_for(sst *st, enum stmt_id i)
{
	return st->stmt[i];
}

/* Runs a statement that takes the instance id as ?1 and an optional integer
 * as ?2 (argc 1 or 2). */
static int exec_id(sst *st, enum stmt_id i, const char *id, int argc, int64_t v)
{
	sqlite3_stmt *s = stmt_for(st, i);

	bind_text(s, 1, id);
	if (argc > 1)
		sqlite3_bind_int64(s, 2, v);
	return exec1(s);
}

static int op_pack(sst *st, struct op *o)
{
	sqlite3_stmt *s = stmt_for(st, S_PACK_INS);
	int rc;

	bind_text(s, 1, o->id);
	bind_text(s, 2, o->s1);
	bind_blob(s, 3, o->hash, 32);
	sqlite3_bind_int64(s, 4, wall_ms());
	rc = exec1(s);
	if (rc != SQLITE_DONE || sqlite3_changes(st->db) > 0)
		return rc;
	s = stmt_for(st, S_PACK_GET); /* seen before: same contents? */
	bind_text(s, 1, o->id);
	bind_text(s, 2, o->s1);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(s, 0);
		int same = sqlite3_column_bytes(s, 0) == 32 && h && memcmp(h, o->hash, 32) == 0;
		rc = same ? SQLITE_DONE : SQLITE_CONSTRAINT_UNIQUE;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int op_put(sst *st, struct op *o)
{
	const sst_instance *in = o->in;
	sqlite3_stmt *s = stmt_for(st, S_INST_PUT);
	int rc;

	if (o->flag) { /* reset: the old rows go in the same transaction */
		enum stmt_id del[] = {S_SNAP_DEL, S_INPUT_DEL, S_DEAD_DEL, S_INC_DEL};
		size_t n = o->flag == SST_RESET_ALL ? sizeof del / sizeof del[0] : 2;
		for (size_t i = 0; i < n; i++)
			if ((rc = exec_id(st, del[i], in->id, 1, 0)) != SQLITE_DONE)
				return rc;
	}
	bind_text(s, 1, in->id);
	bind_text(s, 2, in->pack_id);
	bind_text(s, 3, in->pack_version);
	sqlite3_bind_int64(s, 4, (int64_t)in->seed);
	sqlite3_bind_int64(s, 5, in->tick_ms);
	bind_blob(s, 6, o->data, o->len);
	sqlite3_bind_int(s, 7, in->status);
	bind_text(s, 8, in->reason);
	sqlite3_bind_int64(s, 9, in->created_ms ? in->created_ms : wall_ms());
	return exec1(s);
}

static int op_status(sst *st, struct op *o)
{
	sqlite3_stmt *s = stmt_for(st, S_INST_STATUS);
	int rc;

	bind_text(s, 1, o->id);
	sqlite3_bind_int(s, 2, o->flag);
	bind_text(s, 3, o->s2);
	rc = exec1(s);
	if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0)
		return SQLITE_NOTFOUND; /* mapped to -ENOENT by the caller */
	return rc;
}

static int op_append(sst *st, struct op *o)
{
	sqlite3_stmt *s = stmt_for(st, S_INPUT_INS);

	bind_text(s, 1, o->id);
	sqlite3_bind_int64(s, 2, (int64_t)o->a);
	bind_blob(s, 3, o->data, o->len);
	return exec1(s);
}

static int op_snap(sst *st, struct op *o)
{
	sqlite3_stmt *s = stmt_for(st, S_SNAP_PUT);
	int rc;

	bind_text(s, 1, o->id);
	sqlite3_bind_int64(s, 2, (int64_t)o->a);
	sqlite3_bind_int64(s, 3, (int64_t)o->b);
	bind_blob(s, 4, o->hash, 32);
	bind_blob(s, 5, o->data, o->len);
	rc = exec1(s);
	if (rc == SQLITE_DONE && !atomic_load(&st->history))
		rc = exec_id(st, S_INPUT_COVERED, o->id, 2, (int64_t)o->a);
	if (rc == SQLITE_DONE)
		rc = exec_id(st, S_SNAP_TRIM, o->id, 2, st->keep);
	if (rc == SQLITE_DONE && atomic_load(&st->history)) /* what no kept snapshot needs */
		rc = exec_id(st, S_INPUT_OLDEST, o->id, 0, 0);
	return rc;
}

static int op_dead(sst *st, struct op *o)
{
	const sst_dead_letter *d = o->dl;
	sqlite3_stmt *s = stmt_for(st, S_DEAD_INS);

	bind_text(s, 1, o->id);
	sqlite3_bind_int64(s, 2, (int64_t)d->input);
	sqlite3_bind_int64(s, 3, (int64_t)d->tick);
	bind_text(s, 4, d->kind);
	bind_text(s, 5, d->name);
	sqlite3_bind_int(s, 6, d->code);
	bind_text(s, 7, d->message);
	return exec1(s);
}

static int op_incident(sst *st, struct op *o)
{
	sqlite3_stmt *s = stmt_for(st, S_INC_PUT);

	bind_text(s, 1, o->id);
	sqlite3_bind_int64(s, 2, wall_ms());
	sqlite3_bind_int(s, 3, o->flag);
	bind_blob(s, 4, o->data, o->len);
	return exec1(s);
}

/* Runs one request's statements; returns the SQLite result code. */
static int op_exec(sst *st, struct op *o)
{
	int rc;

	switch (o->kind) {
	case OP_PACK:
		return op_pack(st, o);
	case OP_PUT:
		return op_put(st, o);
	case OP_STATUS:
		return op_status(st, o);
	case OP_DROP: /* snapshots, inputs and dead letters cascade */
		return exec_id(st, S_INST_DEL, o->id, 1, 0);
	case OP_APPEND:
		return op_append(st, o);
	case OP_TRUNC:
		rc = exec_id(st, S_INPUT_TRUNC, o->id, 2, (int64_t)o->a);
		return rc == SQLITE_DONE ? exec_id(st, S_SNAP_TRUNC, o->id, 2, (int64_t)o->a) : rc;
	case OP_SNAP:
		return op_snap(st, o);
	case OP_DEAD:
		return op_dead(st, o);
	case OP_INCIDENT:
		return op_incident(st, o);
	}
	return SQLITE_MISUSE;
}

static int op_errno(int rc)
{
	if (rc == SQLITE_NOTFOUND)
		return -ENOENT;
	return map_rc(rc == SQLITE_DONE ? SQLITE_OK : rc);
}

/* Runs o inside a savepoint, so that a failing request leaves the others of
 * its group alone. */
static void run_one(sst *st, struct op *o)
{
	int rc = exec1(stmt_for(st, S_SAVE));

	if (rc == SQLITE_DONE)
		rc = op_exec(st, o);
	if (rc != SQLITE_DONE) {
		o->r = op_errno(rc);
		/* not found and a changed pack are the caller's to report */
		if (rc != SQLITE_NOTFOUND &&
		    !(o->kind == OP_PACK && rc == SQLITE_CONSTRAINT_UNIQUE))
			log_error("store: %s '%s': %s", op_name[o->kind], o->id,
				  sqlite3_errmsg(st->db));
		exec1(stmt_for(st, S_UNDO));
	} else {
		o->r = 0;
	}
	exec1(stmt_for(st, S_RELEASE));
}

/* Fails every request of the group that has not failed yet. */
static void fail_group(struct op *list, int r)
{
	for (; list; list = list->next)
		if (list->r == 0)
			list->r = r;
}

/* One transaction for the whole group. Returns 1 when it committed. */
static int run_group(sst *st, struct op *list)
{
	int rc = exec1(stmt_for(st, S_BEGIN));
	struct op *o;

	if (rc != SQLITE_DONE) {
		log_error("store: begin: %s", sqlite3_errmsg(st->db));
		fail_group(list, map_rc(rc));
		return 0;
	}
	for (o = list; o; o = o->next)
		run_one(st, o);
	rc = exec1(stmt_for(st, S_COMMIT));
	if (rc == SQLITE_DONE)
		return 1;
	log_error("store: commit: %s", sqlite3_errmsg(st->db));
	fail_group(list, map_rc(rc) ? map_rc(rc) : -EIO);
	if (!sqlite3_get_autocommit(st->db))
		exec1(stmt_for(st, S_ROLLBACK));
	return 0;
}

/* Waits (st->mu held) for the group to fill: while fewer requests wait than
 * 3/4 of the previous group (not all of it: on a busy machine the last few
 * appenders are slow to come back, and waiting for them cost more than it
 * saved, see tests/bench/bench_store.c), and no longer after the group's
 * first request than group_ms or than the previous commit took (waiting
 * longer than a commit costs is never worth it). A lone appender never waits;
 * N steady appenders commit about N at a time. */
static size_t group_target(const sst *st)
{
	return st->last_group - st->last_group / 4;
}

static void gather(sst *st)
{
	uint64_t wait = (uint64_t)st->group_ms * 1000000u;
	uint64_t deadline = st->first_ns + (st->group_ns < wait ? st->group_ns : wait);
	struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
			      .tv_nsec = (long)(deadline % 1000000000u)};
	size_t target = group_target(st);

	while (st->queued < target && !st->closing && mono_ns() < deadline)
		if (pthread_cond_timedwait(&st->work_cv, &st->mu, &ts) == ETIMEDOUT)
			break;
}

static void finish_group(sst *st, struct op *list, size_t n, int committed)
{
	struct op *o, *next;

	st->stats.commits += committed;
	st->stats.requests += n;
	if (n > st->stats.max_group)
		st->stats.max_group = n;
	st->last_group = n;
	for (o = list; o; o = next) {
		next = o->next; /* o belongs to its caller once done is set */
		st->stats.appends += o->kind == OP_APPEND;
		st->stats.failures += o->r < 0;
		o->done = 1;
	}
	pthread_cond_broadcast(&st->done_cv);
}

static void *writer_main(void *arg)
{
	sst *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct op *list;
		size_t n;
		uint64_t t0;
		int committed;

		while (st->head == NULL && !st->closing)
			pthread_cond_wait(&st->work_cv, &st->mu);
		if (st->head == NULL)
			break;
		if (st->group_ms)
			gather(st);
		list = st->head;
		n = st->queued;
		st->head = st->tail = NULL;
		st->queued = 0;
		pthread_mutex_unlock(&st->mu);
		t0 = mono_ns();
		committed = run_group(st, list);
		t0 = mono_ns() - t0;
		pthread_mutex_lock(&st->mu);
		st->group_ns = t0;
		finish_group(st, list, n, committed);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* Queues o and waits until its group has committed (or failed). */
static int submit(sst *st, struct op *o)
{
	o->next = NULL;
	o->done = 0;
	o->r = 0;
	pthread_mutex_lock(&st->mu);
	if (st->closing) {
		pthread_mutex_unlock(&st->mu);
		return -ESHUTDOWN;
	}
	if (st->tail)
		st->tail->next = o;
	else
		st->head = o;
	st->tail = o;
	if (st->queued++ == 0)
		st->first_ns = mono_ns();
	if (st->queued == 1 || st->queued >= group_target(st))
		pthread_cond_signal(&st->work_cv);
	st->stats.pending++;
	while (!o->done)
		pthread_cond_wait(&st->done_cv, &st->mu);
	st->stats.pending--;
	pthread_mutex_unlock(&st->mu);
	return o->r;
}

/* ---- write calls ---------------------------------------------------------------------- */

int sst_note_pack(sst *st, const char *id, const char *version, const uint8_t hash[32])
{
	struct op o = {.kind = OP_PACK, .id = id, .s1 = version, .hash = hash};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || version == NULL || hash == NULL)
		return -EINVAL;
	return submit(st, &o);
}

int sst_put_instance(sst *st, const sst_instance *in, int reset)
{
	struct op o = {.kind = OP_PUT, .in = in, .flag = reset};
	uint8_t *labels = NULL;
	int r;

	if (st == NULL)
		return 0;
	if (in == NULL || check_id(in->id) < 0 || !in->pack_id || !in->pack_version ||
	    (in->n_labels && !in->labels) || reset < 0 || reset > SST_RESET_ALL)
		return -EINVAL;
	r = labels_encode(in->labels, in->n_labels, &labels, &o.len);
	if (r < 0)
		return r;
	o.id = in->id;
	o.data = labels;
	r = submit(st, &o);
	free(labels);
	return r;
}

int sst_set_status(sst *st, const char *id, int status, const char *reason)
{
	struct op o = {.kind = OP_STATUS, .id = id, .flag = status, .s2 = reason};

	if (st == NULL)
		return 0;
	return check_id(id) < 0 ? -EINVAL : submit(st, &o);
}

int sst_drop_instance(sst *st, const char *id)
{
	struct op o = {.kind = OP_DROP, .id = id};

	if (st == NULL)
		return 0;
	return check_id(id) < 0 ? -EINVAL : submit(st, &o);
}

int sst_append_input(sst *st, const char *id, uint64_t index, const uint8_t *data, size_t len)
{
	struct op o = {.kind = OP_APPEND, .id = id, .a = index, .data = data, .len = len};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || index > INT64_MAX || (len && !data))
		return -EINVAL;
	if (len > SST_MAX_BLOB)
		return -E2BIG;
	return submit(st, &o);
}

int sst_truncate(sst *st, const char *id, uint64_t from)
{
	struct op o = {.kind = OP_TRUNC, .id = id, .a = from};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || from > INT64_MAX)
		return -EINVAL;
	return submit(st, &o);
}

int sst_put_snapshot(sst *st, const char *id, uint64_t input, uint64_t tick, const uint8_t hash[32],
		     const uint8_t *blob, size_t len)
{
	struct op o = {.kind = OP_SNAP,
		       .id = id,
		       .a = input,
		       .b = tick,
		       .hash = hash,
		       .data = blob,
		       .len = len};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || input > INT64_MAX || tick > INT64_MAX || hash == NULL ||
	    (len && !blob))
		return -EINVAL;
	if (len > SST_MAX_BLOB)
		return -E2BIG;
	return submit(st, &o);
}

int sst_put_dead_letter(sst *st, const char *id, const sst_dead_letter *d)
{
	struct op o = {.kind = OP_DEAD, .id = id, .dl = d};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || d == NULL || d->input > INT64_MAX || d->tick > INT64_MAX)
		return -EINVAL;
	return submit(st, &o);
}

int sst_put_incident(sst *st, const char *id, int code, const char *trace_json, size_t len)
{
	struct op o = {.kind = OP_INCIDENT,
		       .id = id,
		       .flag = code,
		       .data = (const uint8_t *)trace_json,
		       .len = len};

	if (st == NULL)
		return 0;
	if (check_id(id) < 0 || trace_json == NULL || len == 0)
		return -EINVAL;
	if (len > SST_MAX_BLOB)
		return -E2BIG;
	if (memchr(trace_json, '\0', len) != NULL) /* text: sst_load refuses a NUL */
		return -EINVAL;
	return submit(st, &o);
}

void sst_set_history(sst *st, int on)
{
	if (st)
		atomic_store(&st->history, on != 0);
}

void sst_get_stats(sst *st, sst_stats *out)
{
	memset(out, 0, sizeof *out);
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	out->queued = st->queued;
	pthread_mutex_unlock(&st->mu);
}

void sst_close(sst *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	st->closing = 1; /* the writer commits what is queued, then ends */
	pthread_cond_signal(&st->work_cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->writer, NULL);
	free_store(st);
}

/* ---- reading back: the file is checked, not trusted ------------------------------------ */

enum load_id { L_INST, L_SNAP, L_OLDER, L_INPUTS, L_DEAD, L_INCIDENT, NLOAD };

static const char *const load_sql[NLOAD] = {
    [L_INST] = "SELECT id, pack_id, pack_version, seed, tick_ms, labels, status, reason, "
	       "created FROM instances ORDER BY created, id",
    [L_SNAP] = "SELECT input, tick, state_hash, blob FROM snapshots WHERE instance = ?1 "
	       "ORDER BY input DESC LIMIT 1",
    [L_OLDER] = "SELECT input, tick, state_hash, blob FROM snapshots WHERE instance = ?1 "
		"AND input < ?2 ORDER BY input",
    [L_INPUTS] = "SELECT idx, data FROM inputs WHERE instance = ?1 AND idx >= ?2 ORDER BY idx",
    [L_DEAD] = "SELECT input, tick, kind, name, code, message FROM dead_letters "
	       "WHERE instance = ?1 ORDER BY seq",
    [L_INCIDENT] = "SELECT at, code, trace FROM incidents WHERE instance = ?1",
};

struct loader {
	sqlite3 *db;
	sqlite3_stmt *s[NLOAD];
	const char *id; /* the instance being read, for messages */
	char *err;
	size_t errlen;
	sst_input *inputs;
	size_t n_inputs, cap_inputs;
	sst_snapshot *older; /* blobs copied */
	size_t n_older, cap_older;
	sst_dead_letter *dead;
	size_t n_dead, cap_dead;
	sst_label *labels;
	char *incident; /* the incident's trace, copied and NUL-terminated */
};

static int col_int(sqlite3_stmt *s, int i, int64_t *v)
{
	if (sqlite3_column_type(s, i) != SQLITE_INTEGER)
		return -EBADMSG;
	*v = sqlite3_column_int64(s, i);
	return 0;
}

static int col_u64(sqlite3_stmt *s, int i, uint64_t *v)
{
	int64_t x = 0;
	int r = col_int(s, i, &x);

	*v = (uint64_t)x;
	return r;
}

/* Text without an embedded NUL. */
static int col_text(sqlite3_stmt *s, int i, const char **t)
{
	if (sqlite3_column_type(s, i) != SQLITE_TEXT)
		return -EBADMSG;
	*t = (const char *)sqlite3_column_text(s, i);
	if (*t == NULL)
		return -ENOMEM;
	return strlen(*t) == (size_t)sqlite3_column_bytes(s, i) ? 0 : -EBADMSG;
}

static int col_blob(sqlite3_stmt *s, int i, const uint8_t **p, size_t *len)
{
	if (sqlite3_column_type(s, i) != SQLITE_BLOB)
		return -EBADMSG;
	*p = sqlite3_column_blob(s, i);
	*len = (size_t)sqlite3_column_bytes(s, i);
	if (*p == NULL && *len)
		return -ENOMEM;
	if (*p == NULL)
		*p = (const uint8_t *)"";
	return 0;
}

/* The snapshot row of s (input, tick, state_hash, blob); the blob points into
 * s's row. */
static int read_snap_row(sqlite3_stmt *s, sst_snapshot *sn)
{
	const uint8_t *h;
	size_t hl;
	int r = col_u64(s, 0, &sn->input);

	if (r == 0)
		r = col_u64(s, 1, &sn->tick);
	if (r == 0)
		r = col_blob(s, 2, &h, &hl);
	if (r == 0 && hl != sizeof sn->hash)
		r = -EBADMSG;
	if (r == 0) {
		memcpy(sn->hash, h, sizeof sn->hash);
		r = col_blob(s, 3, &sn->blob, &sn->len);
	}
	return r;
}

static int read_inst_row(struct loader *ld, sst_instance *in)
{
	sqlite3_stmt *s = ld->s[L_INST];
	const uint8_t *lb;
	size_t ll;
	int64_t v;
	int r = col_text(s, 0, &in->id);

	if (r == 0 && check_id(in->id) < 0)
		r = -EBADMSG;
	if (r == 0)
		ld->id = in->id;
	if (r == 0 && (r = col_text(s, 1, &in->pack_id)) == 0 &&
	    (r = col_text(s, 2, &in->pack_version)) == 0 && (r = col_u64(s, 3, &in->seed)) == 0 &&
	    (r = col_int(s, 4, &v)) == 0) {
		in->tick_ms = (uint32_t)v;
		r = v < 0 || v > UINT32_MAX ? -EBADMSG : 0;
	}
	if (r == 0 && (r = col_blob(s, 5, &lb, &ll)) == 0)
		r = labels_decode(lb, ll, &ld->labels, &in->n_labels);
	in->labels = ld->labels;
	if (r == 0 && (r = col_int(s, 6, &v)) == 0) {
		in->status = (int)v;
		r = v < INT32_MIN || v > INT32_MAX ? -EBADMSG : 0;
	}
	if (r == 0 && (r = col_text(s, 7, &in->reason)) == 0)
		r = col_int(s, 8, &in->created_ms);
	return r;
}

static void drop_inputs(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_inputs; i++)
		free((void *)ld->inputs[i].data);
	ld->n_inputs = 0;
}

static int grow_inputs(struct loader *ld)
{
	if (ld->n_inputs == ld->cap_inputs) {
		size_t ncap = ld->cap_inputs ? ld->cap_inputs * 2 : 64;
		sst_input *ni = realloc(ld->inputs, ncap * sizeof *ni);
		if (ni == NULL)
			return -ENOMEM;
		ld->inputs = ni;
		ld->cap_inputs = ncap;
	}
	return 0;
}

static int input_missing(struct loader *ld, uint64_t idx)
{
	snprintf(ld->err, ld->errlen, "instance '%s': input %llu missing", ld->id,
		 (unsigned long long)idx);
	return -EBADMSG;
}

/* Reads the inputs from index base on, copied. From need on they must be
 * contiguous; before need only the run that reaches need unbroken is kept
 * (older inputs the store no longer needs may have gaps). *first is the
 * index of inputs[0] (need when none is before it). */
static int read_inputs(struct loader *ld, uint64_t base, uint64_t need, uint64_t *first)
{
	sqlite3_stmt *s = ld->s[L_INPUTS];
	int rc, r = 0;

	*first = base;
	bind_text(s, 1, ld->id);
	sqlite3_bind_int64(s, 2, (int64_t)base);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		sst_input e;
		const uint8_t *p;
		uint64_t want = *first + ld->n_inputs;
		if ((r = col_u64(s, 0, &e.index)) < 0 || (r = col_blob(s, 1, &p, &e.len)) < 0)
			break;
		if (e.index != want && (want >= need || e.index > need))
			return input_missing(ld, want >= need ? want : need);
		if (e.index != want) { /* a gap before need: the run starts again here */
			drop_inputs(ld);
			*first = e.index;
		}
		if (grow_inputs(ld) < 0 || (e.data = malloc(e.len ? e.len : 1)) == NULL)
			return -ENOMEM;
		memcpy((uint8_t *)e.data, p, e.len);
		ld->inputs[ld->n_inputs++] = e;
	}
	if (r == 0 && rc == SQLITE_DONE && *first + ld->n_inputs < need) {
		drop_inputs(ld); /* the run does not reach need */
		*first = need;
	}
	return r < 0 ? r : map_rc(rc);
}

/* Reads the snapshots older than the newest (covering fewer than `below`
 * inputs), oldest first, their blobs copied. */
static int read_older(struct loader *ld, uint64_t below)
{
	sqlite3_stmt *s = ld->s[L_OLDER];
	int rc, r = 0;

	bind_text(s, 1, ld->id);
	sqlite3_bind_int64(s, 2, (int64_t)below);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		sst_snapshot *sn;
		uint8_t *copy;
		if (ld->n_older == ld->cap_older) {
			size_t ncap = ld->cap_older ? ld->cap_older * 2 : 4;
			sst_snapshot *no = realloc(ld->older, ncap * sizeof *no);
			if (no == NULL)
				return -ENOMEM;
			ld->older = no;
			ld->cap_older = ncap;
		}
		sn = &ld->older[ld->n_older];
		if ((r = read_snap_row(s, sn)) < 0)
			break;
		if ((copy = malloc(sn->len ? sn->len : 1)) == NULL)
			return -ENOMEM;
		if (sn->len > 0)
			memcpy(copy, sn->blob, sn->len);
		sn->blob = copy;
		ld->n_older++;
	}
	return r < 0 ? r : map_rc(rc);
}

static int read_dead(struct loader *ld)
{
	sqlite3_stmt *s = ld->s[L_DEAD];
	int rc, r = 0;

	bind_text(s, 1, ld->id);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		sst_dead_letter d;
		int64_t code = 0;
		if (ld->n_dead == ld->cap_dead) {
			size_t ncap = ld->cap_dead ? ld->cap_dead * 2 : 8;
			sst_dead_letter *nd = realloc(ld->dead, ncap * sizeof *nd);
			if (nd == NULL)
				return -ENOMEM;
			ld->dead = nd;
			ld->cap_dead = ncap;
		}
		if ((r = col_u64(s, 0, &d.input)) < 0 || (r = col_u64(s, 1, &d.tick)) < 0 ||
		    (r = col_text(s, 2, &d.kind)) < 0 || (r = col_text(s, 3, &d.name)) < 0 ||
		    (r = col_int(s, 4, &code)) < 0 || (r = col_text(s, 5, &d.message)) < 0)
			break;
		d.code = (int)code;
		/* one allocation for the three strings; kind is its start */
		size_t kl = strlen(d.kind) + 1, nl = strlen(d.name) + 1, ml = strlen(d.message) + 1;
		char *b = malloc(kl + nl + ml);
		if (b == NULL)
			return -ENOMEM;
		memcpy(b, d.kind, kl);
		memcpy(b + kl, d.name, nl);
		memcpy(b + kl + nl, d.message, ml);
		d.kind = b;
		d.name = b + kl;
		d.message = b + kl + nl;
		ld->dead[ld->n_dead++] = d;
	}
	return r < 0 ? r : map_rc(rc);
}

static void loader_clear(struct loader *ld)
{
	size_t i;

	drop_inputs(ld);
	for (i = 0; i < ld->n_older; i++)
		free((void *)ld->older[i].blob);
	for (i = 0; i < ld->n_dead; i++)
		free((void *)ld->dead[i].kind);
	ld->n_older = ld->n_dead = 0;
	free(ld->labels);
	ld->labels = NULL;
	free(ld->incident);
	ld->incident = NULL;
	for (i = L_SNAP; i < NLOAD; i++) {
		sqlite3_reset(ld->s[i]);
		sqlite3_clear_bindings(ld->s[i]);
	}
}

/* The instance's incident row, if any, into l: a trace text (a blob of
 * 1..SST_MAX_BLOB bytes without NUL), copied. A row of other types or sizes
 * is -EBADMSG with err filled. */
static int read_incident(struct loader *ld, sst_loaded *l)
{
	sqlite3_stmt *s = ld->s[L_INCIDENT];
	const uint8_t *p;
	int64_t code = 0;
	size_t len = 0;
	int rc, r;

	bind_text(s, 1, ld->id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW)
		return map_rc(rc);
	r = col_int(s, 0, &l->incident_ms);
	if (r == 0 && (r = col_int(s, 1, &code)) == 0 && (code < INT32_MIN || code > INT32_MAX))
		r = -EBADMSG;
	if (r == 0 && (r = col_blob(s, 2, &p, &len)) == 0 &&
	    (len == 0 || len > SST_MAX_BLOB || memchr(p, '\0', len) != NULL))
		r = -EBADMSG;
	if (r == -EBADMSG)
		snprintf(ld->err, ld->errlen, "instance '%s': malformed incident row", ld->id);
	if (r == 0 && (ld->incident = malloc(len + 1)) == NULL)
		r = -ENOMEM;
	if (r < 0)
		return r;
	memcpy(ld->incident, p, len);
	ld->incident[len] = '\0';
	l->incident = ld->incident;
	l->incident_len = len;
	l->incident_code = (int)code;
	return 0;
}

/* Fills l's older snapshots, history and inputs from what was read: the
 * older snapshots whose inputs up to the newest are all stored (first: the
 * index of ld->inputs[0]). */
static void split_history(struct loader *ld, sst_loaded *l, uint64_t first)
{
	uint64_t need = l->snap ? l->snap->input : 0, from;
	size_t k = 0, skip;

	while (k < ld->n_older && ld->older[k].input < first)
		k++;
	l->older = ld->older + k;
	l->n_older = ld->n_older - k;
	from = l->n_older ? l->older[0].input : need;
	skip = (size_t)(from - first);
	l->history = ld->inputs + skip;
	l->n_history = (size_t)(need - from);
	l->inputs = ld->inputs + skip + l->n_history;
	l->n_inputs = ld->n_inputs - skip - l->n_history;
}

/* Reads the instance's snapshots and inputs into l. */
static int read_log(struct loader *ld, sst_loaded *l, sst_snapshot *sn)
{
	uint64_t first = 0;
	int rc, r;

	bind_text(ld->s[L_SNAP], 1, ld->id);
	rc = sqlite3_step(ld->s[L_SNAP]);
	r = rc == SQLITE_ROW ? read_snap_row(ld->s[L_SNAP], sn) : map_rc(rc);
	if (r == 0 && rc == SQLITE_ROW)
		l->snap = sn;
	if (r == 0 && l->snap)
		r = read_older(ld, sn->input);
	if (r == 0)
		r = read_inputs(ld,
				ld->n_older ? ld->older[0].input
				: l->snap   ? sn->input
					    : 0,
				l->snap ? sn->input : 0, &first);
	if (r == 0)
		split_history(ld, l, first);
	return r;
}

/* Reads the current instance row and its children, then visits it. */
static int load_one(struct loader *ld, sst_visit_fn fn, void *ud)
{
	sst_loaded l = {0};
	sst_snapshot sn = {0};
	int r = read_inst_row(ld, &l.inst);

	if (r == 0)
		r = read_log(ld, &l, &sn);
	if (r == 0)
		r = read_dead(ld);
	if (r == 0)
		r = read_incident(ld, &l);
	if (r == -EBADMSG && ld->err[0] == '\0')
		snprintf(ld->err, ld->errlen, "instance '%s': malformed row",
			 ld->id ? ld->id : "?");
	else if (r < 0 && ld->err[0] == '\0')
		snprintf(ld->err, ld->errlen, "instance '%s': %s", ld->id ? ld->id : "?",
			 r == -ENOMEM ? "out of memory" : sqlite3_errmsg(ld->db));
	if (r == 0) {
		l.dead = ld->dead;
		l.n_dead = ld->n_dead;
		r = fn(ud, &l);
	}
	loader_clear(ld);
	return r;
}

static int load_all(struct loader *ld, sst_visit_fn fn, void *ud)
{
	int rc, r = 0, i;

	for (i = 0; i < NLOAD; i++) {
		rc = sqlite3_prepare_v2(ld->db, load_sql[i], -1, &ld->s[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(ld->err, ld->errlen, "%s", sqlite3_errmsg(ld->db));
			return map_rc(rc) ? map_rc(rc) : -EIO;
		}
	}
	while (r == 0 && (rc = sqlite3_step(ld->s[L_INST])) == SQLITE_ROW) {
		ld->id = NULL;
		r = load_one(ld, fn, ud);
	}
	if (r == 0 && rc != SQLITE_DONE) {
		snprintf(ld->err, ld->errlen, "reading instances: %s", sqlite3_errmsg(ld->db));
		r = map_rc(rc) ? map_rc(rc) : -EIO;
	}
	return r;
}

int sst_load(sst *st, sst_visit_fn fn, void *ud, char *err, size_t errlen)
{
	struct loader ld = {.err = err, .errlen = errlen};
	int r, i;

	if (st == NULL)
		return 0;
	err[0] = '\0';
	r = open_conn(st->path, 1, &ld.db, err, errlen);
	if (r < 0)
		return r;
	r = exec_sql(ld.db, "BEGIN", err, errlen); /* one consistent read */
	if (r == 0)
		r = load_all(&ld, fn, ud);
	for (i = 0; i < NLOAD; i++)
		sqlite3_finalize(ld.s[i]);
	sqlite3_exec(ld.db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(ld.db);
	free(ld.inputs);
	free(ld.older);
	free(ld.dead);
	return r;
}
