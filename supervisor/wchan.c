/*
 * wchan — a worker process and its channel (runs in the supervisor; every
 * byte from the worker is hostile, every worker may die at any moment).
 */
#include "supervisor/wchan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/transport/ipc/ipc.h>

#include "common/log.h"
#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/spawn.h"
#include "supervisor/wreply.h"

struct wchan {
	nng_socket sock;
	nng_aio *aio;
	pid_t pid;
	unsigned id;
	uint64_t seq;
	char path[PATH_MAX];
	pthread_mutex_t mu;
	int dead;     /* the worker's pipe went away (under mu) */
	int waiting;  /* an RPC waits on aio (under mu) */
	int peer_pid; /* pid of the first pipe's peer (under mu) */
	int npipes;   /* pipes ever attached (under mu) */
	int reaped;
	int killed_by_us;
	int errfd; /* read end of the worker's stderr */
	pthread_t errthr;
	int errthr_started;
	char last_forbidden[128]; /* "openat" from the worker's SIGSYS report (under mu) */
	st_code death_code;
	char death[256];
	sup_spawn_report spawned; /* layers set up between fork and exec */
	char *layers, *missing;	  /* spawn layers, then the worker's own (Hello) */
};

/* ---- the worker's stderr: forwarded to ours, scanned for seccomp reports ---- */

static void note_forbidden(wchan *w, const char *line)
{
	const char *p = strstr(line, "forbidden syscall ");
	size_t n = 0;

	if (p == NULL)
		return;
	p += strlen("forbidden syscall ");
	while (p[n] && p[n] != ' ' && p[n] != '\n' && p[n] != '"' &&
	       n < sizeof w->last_forbidden - 1)
		n++;
	pthread_mutex_lock(&w->mu);
	memcpy(w->last_forbidden, p, n);
	w->last_forbidden[n] = '\0';
	pthread_mutex_unlock(&w->mu);
}

static void *stderr_reader(void *arg)
{
	wchan *w = arg;
	char buf[4096];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(w->errfd, buf + have, sizeof buf - 1 - have);
		char *nl;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = memchr(buf, '\n', have)) != NULL || have == sizeof buf - 1) {
			size_t len = nl ? (size_t)(nl - buf) + 1 : have;
			char save = buf[len];
			buf[len] = '\0';
			note_forbidden(w, buf);
			if (write(STDERR_FILENO, buf, len) < 0) {
				/* our own log is gone: nothing better to do */
			}
			buf[len] = save;
			memmove(buf, buf + len, have - len);
			have -= len;
			buf[have] = '\0';
		}
	}
	/* stderr closed: the worker has exited (it never closes fd 2 itself). Wake an
	 * RPC or a Hello wait now instead of at its timeout. */
	pthread_mutex_lock(&w->mu);
	w->dead = 1;
	if (w->waiting)
		nng_aio_cancel(w->aio);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- pipe events: who connected, and when the worker went away ------------- */

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	wchan *w = arg;
	uint64_t pid = 0;

	pthread_mutex_lock(&w->mu);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (w->npipes++ > 0 || nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0 ||
		    pid > INT32_MAX) {
			/* one worker, one connection: anything else is refused */
			pthread_mutex_unlock(&w->mu);
			nng_pipe_close(p);
			return;
		}
		w->peer_pid = (int)pid;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		w->dead = 1;
		if (w->waiting)
			nng_aio_cancel(w->aio);
	}
	pthread_mutex_unlock(&w->mu);
}

/* ---- death: reap and describe ---------------------------------------------- */

static void reap(wchan *w, int force_kill, int quiet)
{
	int status = 0, i;
	const char *why;
	char forb[128];

	if (w->reaped || w->pid <= 0)
		return;
	if (force_kill) {
		kill(w->pid, SIGKILL);
		w->killed_by_us = 1;
	}
	/* a worker whose channel closed is exiting: give it 1 s, then SIGKILL */
	for (i = 0; i < 100; i++) {
		pid_t r = waitpid(w->pid, &status, WNOHANG);
		if (r == w->pid || (r < 0 && errno != EINTR))
			break;
		if (i == 99) {
			kill(w->pid, SIGKILL);
			w->killed_by_us = 1;
			waitpid(w->pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	w->reaped = 1;
	pthread_mutex_lock(&w->mu);
	snprintf(forb, sizeof forb, "%s", w->last_forbidden);
	pthread_mutex_unlock(&w->mu);
	why = sup_spawn_describe(status);
	if (forb[0]) {
		w->death_code = MOONPEN__V1__STATUS__CODE__WORKER_CRASHED;
		snprintf(w->death, sizeof w->death, "worker %s: forbidden syscall %s", why, forb);
	} else if (w->death_code != MOONPEN__V1__STATUS__CODE__TIMEOUT && w->death[0] == '\0') {
		w->death_code = MOONPEN__V1__STATUS__CODE__WORKER_CRASHED;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
			w->death_code = MOONPEN__V1__STATUS__CODE__TIMEOUT;
		snprintf(w->death, sizeof w->death, "worker %s", why);
	}
	log_msg(quiet ? LOG_DEBUG : LOG_WARN, NULL, "worker %d (w-%u) ended: %s", (int)w->pid,
		w->id, w->death);
}

st_code wchan_death(const wchan *w, const char **why)
{
	if (why)
		*why = w->death[0] ? w->death : "worker died";
	return w->death_code;
}

/* ---- start ------------------------------------------------------------------ */

static int open_channel(wchan *w, const wchan_opts *o, char *err, unsigned long errlen)
{
	char url[PATH_MAX + 8];
	int r;

	snprintf(w->path, sizeof w->path, "%s/w-%u.sock", o->run_dir, o->id);
	snprintf(url, sizeof url, "ipc://%s", w->path);
	unlink(w->path); /* a stale socket of a previous run */
	if ((r = nng_pair1_open(&w->sock)) != 0 ||
	    (r = nng_setopt_size(w->sock, NNG_OPT_RECVMAXSZ, MP_WORKER_REPLY_MAX_BYTES)) != 0 ||
	    /* a PAIR1 send waits for a peer: bounded, so a worker that died idle
	     * cannot hold its instance (and the shutdown) forever */
	    (r = nng_setopt_ms(w->sock, NNG_OPT_SENDTIMEO, MP_HARD_DEADLINE_FLOOR_MS)) != 0 ||
	    (r = nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, w)) != 0 ||
	    (r = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, pipe_event, w)) != 0 ||
	    (r = nng_aio_alloc(&w->aio, NULL, NULL)) != 0 ||
	    (r = nng_listen(w->sock, url, NULL, 0)) != 0) {
		snprintf(err, errlen, "worker channel %s: %s", url, nng_strerror(r));
		return wire_errno(r);
	}
	chmod(w->path, 0600);
	return 0;
}

static int recv_reply(wchan *w, uint32_t timeout_ms, Moonpen__Worker__V1__FromWorker **out)
{
	ProtobufCMessage *m = NULL;
	nng_msg *msg;
	int r;

	pthread_mutex_lock(&w->mu);
	if (w->dead) {
		pthread_mutex_unlock(&w->mu);
		return -EPIPE;
	}
	nng_aio_set_timeout(w->aio, (nng_duration)timeout_ms);
	w->waiting = 1;
	nng_recv_aio(w->sock, w->aio);
	pthread_mutex_unlock(&w->mu);
	nng_aio_wait(w->aio);
	pthread_mutex_lock(&w->mu);
	w->waiting = 0;
	pthread_mutex_unlock(&w->mu);
	r = nng_aio_result(w->aio);
	if (r != 0)
		return r == NNG_ETIMEDOUT ? -ETIMEDOUT : -EPIPE;
	msg = nng_aio_get_msg(w->aio);
	r = wire_unpack(&moonpen__worker__v1__from_worker__descriptor, nng_msg_body(msg),
			nng_msg_len(msg), MP_WORKER_REPLY_MAX_BYTES, &m);
	nng_msg_free(msg);
	if (r < 0)
		return -EBADMSG;
	*out = (Moonpen__Worker__V1__FromWorker *)m;
	return 0;
}

/* "a,b,c" from two lists (the supervisor's spawn layers, then the worker's).
 * The worker's strings are hostile: only [a-z0-9_:. -()] survive. */
static char *join_layers(const char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t len = 1, i, o = 0;
	char *s;

	for (i = 0; i < na + nb; i++)
		len += strlen(i < na ? a[i] : b[i - na]) + 1;
	s = calloc(1, len);
	if (s == NULL)
		return NULL;
	for (i = 0; i < na + nb; i++) {
		const char *p = i < na ? a[i] : b[i - na];
		if (i)
			s[o++] = ',';
		for (; *p; p++)
			s[o++] = (strchr("abcdefghijklmnopqrstuvwxyz0123456789_:. -()", *p) && *p)
				     ? *p
				     : '?';
	}
	s[o] = '\0';
	return s;
}

static int wait_hello(wchan *w, uint32_t timeout_ms, char *err, unsigned long errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	int r = recv_reply(w, timeout_ms, &fw);

	if (r < 0) {
		snprintf(err, errlen, "worker %d sent no hello (%s)", (int)w->pid,
			 r == -ETIMEDOUT ? "timed out" : "died or broke the protocol");
		return r;
	}
	if (fw->seq != 0 || fw->hello == NULL || fw->hello->pid != w->pid ||
	    w->peer_pid != w->pid) {
		snprintf(err, errlen, "worker %d: unexpected first message (peer pid %d)",
			 (int)w->pid, w->peer_pid);
		r = -EBADMSG;
		goto out;
	}
	w->layers = join_layers(w->spawned.layers, w->spawned.n_layers, fw->hello->layers,
				fw->hello->n_layers);
	{
		const char *sm[SUP_SPAWN_MAX_LAYERS];
		unsigned i;
		for (i = 0; i < w->spawned.n_missing; i++)
			sm[i] = w->spawned.missing[i];
		w->missing =
		    join_layers(sm, w->spawned.n_missing, fw->hello->missing, fw->hello->n_missing);
	}
	if (w->layers == NULL || w->missing == NULL)
		r = -ENOMEM;
out:
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

/* argv: [wrapper words...] worker --url URL --id N [--no-seccomp]. The
 * wrapper (a debugging aid such as valgrind) makes the worker skip seccomp,
 * which a tool that makes its own system calls cannot live with. */
static int worker_argv(const wchan_opts *o, char *words, char **argv, size_t max, char *url,
		       char *idbuf)
{
	size_t n = 0;
	char *save = NULL, *tok;

	if (o->wrapper && o->wrapper[0]) {
		snprintf(words, PATH_MAX, "%s", o->wrapper);
		for (tok = strtok_r(words, " ", &save); tok && n + 7 < max;
		     tok = strtok_r(NULL, " ", &save))
			argv[n++] = tok;
	}
	argv[n++] = (char *)o->worker_path;
	argv[n++] = "--url";
	argv[n++] = url;
	argv[n++] = "--id";
	argv[n++] = idbuf;
	if (o->wrapper && o->wrapper[0])
		argv[n++] = "--no-seccomp";
	argv[n] = NULL;
	return argv[0][0] == '/' ? 0 : -EINVAL;
}

static int spawn_worker(wchan *w, const wchan_opts *o, char *err, unsigned long errlen)
{
	char url[PATH_MAX + 8], idbuf[16], words[PATH_MAX];
	char *argv[40];
	sup_spawn_opts so;
	int pfd[2], r;

	snprintf(url, sizeof url, "ipc://%s", w->path);
	snprintf(idbuf, sizeof idbuf, "%u", o->id);
	if (worker_argv(o, words, argv, sizeof argv / sizeof argv[0], url, idbuf) < 0) {
		snprintf(err, errlen, "worker wrapper must start with an absolute path");
		return -EINVAL;
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	sup_spawn_opts_default(&so);
	so.path = argv[0];
	so.argv = argv;
	so.stderr_fd = pfd[1];
#ifndef MP_SANITIZED /* sanitizer builds: no RLIMIT_AS (see sup_spawn_opts_default) */
	so.rlimit_as = o->mem_bytes + MP_WORKER_AS_MARGIN_BYTES;
#endif
	if (o->wrapper && o->wrapper[0]) {
		so.rlimit_as = RLIM_INFINITY;	 /* valgrind's own address space */
		so.rlimit_fsize = RLIM_INFINITY; /* and its log file */
		/* a moonpend itself under valgrind may not lower its child's descriptor
		 * limit: valgrind guards the descriptors it reserves */
		so.rlimit_nofile = SUP_SPAWN_RLIMIT_KEEP;
	}
	so.report = &w->spawned;
	r = sup_spawn(&so, &w->pid, err, errlen);
	close(pfd[1]);
	if (r < 0) {
		close(pfd[0]);
		return r;
	}
	w->errfd = pfd[0];
	if (pthread_create(&w->errthr, NULL, stderr_reader, w) == 0)
		w->errthr_started = 1;
	return 0;
}

/* Nonzero when the comma-separated list has the token name. */
static int has_layer(const char *list, const char *name, size_t len)
{
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && strncmp(p, name, len) == 0)
			return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* --require-layers: every named layer must be in force in this worker. */
static int check_required(const wchan *w, const char *require, char *err, unsigned long errlen)
{
	const char *p = require;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 0 && !has_layer(w->layers, p, n)) {
			snprintf(err, errlen,
				 "required confinement layer '%.*s' is not in force (missing: %s)",
				 (int)n, p, w->missing[0] ? w->missing : "not applied");
			return -EPERM;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int wchan_start(const wchan_opts *o, wchan **out, char *err, unsigned long errlen)
{
	wchan *w = calloc(1, sizeof *w);
	int r;

	if (w == NULL)
		return -ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	w->id = o->id;
	w->errfd = -1;
	w->death_code = MOONPEN__V1__STATUS__CODE__WORKER_CRASHED;
	r = open_channel(w, o, err, errlen);
	if (r == 0)
		r = spawn_worker(w, o, err, errlen);
	if (r == 0)
		r = wait_hello(w, o->hello_timeout_ms, err, errlen);
	if (r == 0 && o->require && o->require[0])
		r = check_required(w, o->require, err, errlen);
	if (r < 0) {
		wchan_free(w);
		return r;
	}
	*out = w;
	return 0;
}

/* ---- RPC ---------------------------------------------------------------------- */

int wchan_rpc(wchan *w, Moonpen__Worker__V1__ToWorker *m, uint32_t timeout_ms,
	      Moonpen__Worker__V1__FromWorker **out)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	int r;

	m->seq = ++w->seq;
	pthread_mutex_lock(&w->mu);
	r = w->dead ? -EPIPE : 0;
	pthread_mutex_unlock(&w->mu);
	if (r == 0)
		r = wire_send(w->sock, &m->base);
	if (r == -ENOMEM)
		return r;
	if (r == -ETIMEDOUT)
		r = -EPIPE; /* nobody took the message: the worker is gone */
	if (r == 0)
		r = recv_reply(w, timeout_ms, &fw);
	if (r == 0 && !sup_wreply_ok(fw, m->seq, m->slot)) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		r = -EBADMSG;
	}
	if (r == 0) {
		*out = fw;
		return 0;
	}
	if (r == -ETIMEDOUT) {
		w->death_code = MOONPEN__V1__STATUS__CODE__TIMEOUT;
		snprintf(w->death, sizeof w->death,
			 "hard deadline of %u ms exceeded: worker killed", timeout_ms);
	} else if (r == -EBADMSG) {
		snprintf(w->death, sizeof w->death, "worker broke the protocol: killed");
	}
	reap(w, r != -EPIPE, 0);
	return r;
}

pid_t wchan_pid(const wchan *w)
{
	return w->pid;
}

int wchan_alive(wchan *w)
{
	int alive;

	pthread_mutex_lock(&w->mu);
	alive = !w->dead && !w->reaped;
	pthread_mutex_unlock(&w->mu);
	return alive;
}

const char *wchan_layers(const wchan *w)
{
	return w->layers ? w->layers : "";
}

const char *wchan_missing(const wchan *w)
{
	return w->missing ? w->missing : "";
}

void wchan_free(wchan *w)
{
	if (w == NULL)
		return;
	/* hang up first: a healthy worker sees its channel go and exits by itself
	 * (so tools such as valgrind can finish); reap() SIGKILLs it after 1 s */
	nng_close(w->sock);
	if (w->pid > 0 && !w->reaped)
		reap(w, 0, 1); /* the instance is done with it: an ordinary end */
	if (w->aio)
		nng_aio_free(w->aio);
	if (w->path[0])
		unlink(w->path);
	if (w->errthr_started)
		pthread_join(w->errthr, NULL);
	if (w->errfd >= 0)
		close(w->errfd);
	pthread_mutex_destroy(&w->mu);
	free(w->layers);
	free(w->missing);
	free(w);
}
