/*
 * config: defaults, the --config file, flags overriding the file, and the
 * exact error for each kind of bad input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "policy/limits.h"
#include "supervisor/config.h"

static int load(sup_config *c, char *err, int argc, char **argv)
{
	err[0] = '\0';
	return sup_config_load(c, argc, argv, err, 512);
}

/* a worker and a schema and grants must exist for a load to succeed */
static char *base[] = {
    "moonpend", "--worker",	     "/bin/true", "--host-api", "policy/host_api.json",
    "--grants", "policy/grants.json"};

Test(config, defaults_and_flags)
{
	sup_config c;
	char err[512];
	char *argv[] = {base[0], base[1],	base[2],     base[3],  base[4],
			base[5], base[6],	"--run-dir", "/tmp/x", "--deadline-ms",
			"75",	 "--log-level", "debug"};

	cr_assert_eq(load(&c, err, 13, argv), 0, "%s", err);
	cr_expect_str_eq(c.run_dir, "/tmp/x");
	cr_expect_str_eq(c.listen, "ipc:///tmp/x/api.sock", "listen defaults under the run dir");
	cr_expect_eq(c.deadline_ms, 75);
	cr_expect_eq(c.log_level, 0);
	cr_expect_eq(c.mem_bytes, MP_LUA_MEM_BYTES);
	cr_expect_eq(c.hard_factor, MP_HARD_DEADLINE_FACTOR);
	cr_expect_eq(c.api_contexts, MP_API_CONTEXTS);
}

Test(config, file_then_flags)
{
	char path[] = "/tmp/moonpen-conf-XXXXXX", err[512];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	sup_config c;

	cr_assert_not_null(f);
	fprintf(f, "# comment\n\nrun_dir = /srv/run\nlisten=tcp://127.0.0.1:7700\n"
		   "deadline-ms = 20\n  hard_factor = 4  \n");
	fclose(f);
	char *argv[] = {base[0], base[1],    base[2], base[3],	       base[4], base[5],
			base[6], "--config", path,    "--deadline-ms", "30"};
	cr_assert_eq(load(&c, err, 11, argv), 0, "%s", err);
	cr_expect_str_eq(c.run_dir, "/srv/run");
	cr_expect_str_eq(c.listen, "tcp://127.0.0.1:7700");
	cr_expect_eq(c.hard_factor, 4);
	cr_expect_eq(c.deadline_ms, 30, "the flag wins over the file, wherever it stands");
	unlink(path);
}

Test(config, errors_name_the_problem)
{
	char path[] = "/tmp/moonpen-conf-XXXXXX", err[512];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	sup_config c;

	fprintf(f, "run_dir = /a\nbogus = 1\n");
	fclose(f);
	char *a1[] = {base[0], base[1], base[2],    base[3], base[4],
		      base[5], base[6], "--config", path};
	cr_expect_eq(load(&c, err, 9, a1), -EINVAL);
	cr_expect(strstr(err, ":2: unknown key 'bogus'") != NULL, "%s", err);
	unlink(path);

	char *a2[] = {base[0], "--no-such-flag", "1"};
	cr_expect_eq(load(&c, err, 3, a2), -EINVAL);
	cr_expect_str_eq(err, "unknown argument '--no-such-flag' (see --help)");

	char *a3[] = {base[0], base[1], base[2],	 base[3], base[4],
		      base[5], base[6], "--deadline-ms", "0"};
	cr_expect_eq(load(&c, err, 9, a3), -EINVAL);
	cr_expect_str_eq(err, "deadline-ms: expected an integer in [1, 600000], got '0'");

	char *a4[] = {base[0], base[1], base[2],	 base[3], base[4],
		      base[5], base[6], "--hard-factor", "-3"};
	cr_expect_eq(load(&c, err, 9, a4), -EINVAL);
	cr_expect(strstr(err, "hard-factor: expected an integer") != NULL, "%s", err);

	char *a5[] = {base[0], base[1], base[2],       base[3], base[4],
		      base[5], base[6], "--log-level", "loud"};
	cr_expect_eq(load(&c, err, 9, a5), -EINVAL);
	cr_expect_str_eq(err, "log-level: expected debug, info, warn or error");

	char *a6[] = {base[0], "--packs"};
	cr_expect_eq(load(&c, err, 2, a6), -EINVAL);
	cr_expect_str_eq(err, "--packs needs a value");

	char *a7[] = {base[0], "--config", "/nonexistent/moonpend.conf"};
	cr_expect_eq(load(&c, err, 3, a7), -EINVAL);
	cr_expect(strstr(err, "No such file") != NULL, "%s", err);

	char *a8[] = {base[0], "--help"};
	cr_expect_eq(load(&c, err, 2, a8), 1);
}
