/*
 * daemon — start and stop a real moonpend for end-to-end tests (runs in test
 * processes; trusts the build tree).
 */
#include "tests/support/daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

const char *td_bin(const char *name)
{
	static char path[512];
	const char *b = getenv("BUILD");

	snprintf(path, sizeof path, "%s/bin/%s", b && *b ? b : "build", name);
	return path;
}

double td_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int td_alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;
	int alive = 0;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) != NULL)
		alive = p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	fclose(f);
	return alive;
}

int td_slow(void)
{
	const char *w = getenv("MOONPEN_TEST_WORKER_WRAPPER");

	return w != NULL && w[0] != '\0';
}

double td_hard_deadline_ms(void)
{
	return td_slow() ? 10000.0 : 1000.0;
}

/* The socket file exists a moment before the listener accepts. */
int td_api_answers(const char *url)
{
	nng_socket s;
	int ok;

	if (nng_req0_open(&s) != 0)
		return 0;
	ok = nng_dial(s, url, NULL, 0) == 0;
	nng_close(s);
	return ok;
}

pid_t td_exec(const char *url, const char *packs, const char *run, const char *state,
	      const char *log, int pdeathsig, const char *const *extra)
{
	const char *argv[48];
	int n = 0, i;
	pid_t pid;

	argv[n++] = td_bin("moonpend");
	argv[n++] = "--listen";
	argv[n++] = url;
	argv[n++] = "--packs";
	argv[n++] = packs;
	argv[n++] = "--run-dir";
	argv[n++] = run;
	argv[n++] = "--state-dir";
	argv[n++] = state;
	if (td_slow()) { /* workers under valgrind: see td_slow() */
		argv[n++] = "--worker-wrapper";
		argv[n++] = getenv("MOONPEN_TEST_WORKER_WRAPPER");
		argv[n++] = "--deadline-ms";
		argv[n++] = "1000";
		argv[n++] = "--spawn-timeout-ms";
		argv[n++] = "30000";
	}
	for (i = 0; extra && extra[i] && n < 46; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		/* a test that dies (crash, timeout) takes its daemon with it */
		prctl(PR_SET_PDEATHSIG, pdeathsig);
		if (fd >= 0)
			dup2(fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int td_start(td *d, const char *packs_dir, const char *const *extra)
{
	char sock[400];
	double end;

	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "/tmp/moonpen-test.XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	snprintf(d->run, sizeof d->run, "%s/run", d->dir);
	snprintf(d->url, sizeof d->url, "ipc://%s/api.sock", d->run);
	snprintf(d->log, sizeof d->log, "%s/moonpend.log", d->dir);
	d->pid = td_exec(d->url, packs_dir ? packs_dir : "examples/packs", d->run, d->dir, d->log,
			 SIGTERM, extra);
	if (d->pid < 0)
		return -1;
	snprintf(sock, sizeof sock, "%s/api.sock", d->run);
	/* returns as soon as it answers: the bound only matters on a loaded
	 * machine (valgrind's start-up alone can take seconds there) */
	end = td_now_ms() + (td_slow() ? 120000 : 30000);
	do {
		struct stat st;
		if (stat(sock, &st) == 0 && td_api_answers(d->url))
			return 0;
		if (!td_alive(d->pid))
			break;
		usleep(10000);
	} while (td_now_ms() < end);
	fprintf(stderr, "moonpend did not start; log %s\n", d->log);
	return -1;
}

static int run_dir_clean(const char *run)
{
	DIR *dir = opendir(run);
	struct dirent *de;
	int clean = 1;

	if (dir == NULL)
		return 1;
	while ((de = readdir(dir)) != NULL)
		if (strstr(de->d_name, ".sock")) {
			fprintf(stderr, "left behind: %s/%s\n", run, de->d_name);
			clean = 0;
		}
	closedir(dir);
	return clean;
}

int td_stop(td *d, int keep)
{
	char cmd[600];
	int status = 0, r;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &status, 0) != d->pid)
		return -1;
	d->pid = 0;
	r = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (r == 0 && !run_dir_clean(d->run))
		r = -2;
	if (!keep && r == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			return -1;
	}
	return r;
}

int td_spk_replay(const char *trace_path, const char *args, char *out, size_t outlen)
{
	char cmd[1024];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof cmd, "%s replay '%s' %s%s%s%s 2>&1", td_bin("spk"), trace_path, args,
		 td_slow() ? " --deadline-ms 1000 --worker-wrapper '" : "",
		 td_slow() ? getenv("MOONPEN_TEST_WORKER_WRAPPER") : "", td_slow() ? "'" : "");
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
