/*
 * moonpenctl — command-line client of a running moonpend (operator tool).
 *
 * Runs as the operator. Trusts its command line as far as meaning goes, but
 * parses every number and JSON argument strictly; the reply is checked by
 * libmoonpen and printed as one JSON line (mp_response_to_json()).
 *
 * Exit status: 0 when the reply's status is ok, 1 for an error status, 2 for a
 * usage error, a bad JSON argument or a transport error (message on stderr).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/moonpen.h"
#include "common/val_json.h"

#define CTL_MAX_LABELS 64

enum { EXIT_OK = 0, EXIT_STATUS = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *url;
	const char *id;
	const char *name; /* event name or function */
	uint32_t count;
	mp_create_opts create;
	const char *label_keys[CTL_MAX_LABELS];
	const char *label_values[CTL_MAX_LABELS];
	val_t *payload;
	val_t **args;
	size_t nargs;
	uint64_t number;      /* rollback TICK, answer CALL_ID */
	const char *error;    /* answer --error MSG */
	const char *out_file; /* snapshot --out FILE */
	uint8_t *blob;	      /* restore FILE's bytes */
	size_t bloblen;
};

struct cmd {
	const char *name;
	int min_args, max_args; /* positional arguments after the command */
	int (*parse)(struct ctl *ctl, int argc, char **argv);
	int (*run)(struct ctl *ctl, mp_client *c, mp_response **out);
};

static void usage(FILE *f)
{
	fprintf(f, "usage:\n"
		   "  moonpenctl [--url URL] create ID --pack PACK [--version V] [--seed N]"
		   " [--tick-ms MS] [--label K=V]...\n"
		   "  moonpenctl [--url URL] event ID NAME [PAYLOAD_JSON]\n"
		   "  moonpenctl [--url URL] tick ID [COUNT]\n"
		   "  moonpenctl [--url URL] call ID FUNCTION [ARGS_JSON_ARRAY]\n"
		   "  moonpenctl [--url URL] info ID | list | close ID\n"
		   "  moonpenctl [--url URL] snapshot ID [--out FILE] | restore ID FILE\n"
		   "  moonpenctl [--url URL] rollback ID TICK | trace ID | incident ID\n"
		   "  moonpenctl [--url URL] answer ID CALL_ID VALUE_JSON|--error MESSAGE\n"
		   "URL defaults to $MOONPEN_URL, else " MP_DEFAULT_URL "\n");
}

/* A usage error: the reason, then the usage text. Returns -1. */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "moonpenctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	return -1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ---- argument parsers ------------------------------------------------------------------- */

static int parse_label(struct ctl *ctl, char *kv)
{
	char *eq = strchr(kv, '=');
	size_t n = ctl->create.n_labels;

	if (eq == NULL || eq == kv)
		return bad_usage("--label wants K=V, got '%s'", kv);
	if (n >= CTL_MAX_LABELS)
		return bad_usage("too many labels (at most 64): '%s'", kv);
	*eq = '\0';
	ctl->label_keys[n] = kv;
	ctl->label_values[n] = eq + 1;
	ctl->create.n_labels = n + 1;
	return 0;
}

static int parse_create_opt(struct ctl *ctl, const char *opt, char *val)
{
	uint64_t n;

	if (strcmp(opt, "--pack") == 0) {
		ctl->create.pack_id = val;
	} else if (strcmp(opt, "--version") == 0) {
		ctl->create.pack_version = val;
	} else if (strcmp(opt, "--seed") == 0) {
		if (parse_u64(val, UINT64_MAX, &n) < 0)
			return bad_usage("--seed wants an unsigned integer, got '%s'", val);
		ctl->create.seed = n;
	} else if (strcmp(opt, "--tick-ms") == 0) {
		if (parse_u64(val, UINT32_MAX, &n) < 0)
			return bad_usage("--tick-ms wants milliseconds, got '%s'", val);
		ctl->create.tick_ms = (uint32_t)n;
	} else if (strcmp(opt, "--label") == 0) {
		return parse_label(ctl, val);
	} else {
		return bad_usage("unknown option '%s' for create", opt);
	}
	return 0;
}

static int parse_create(struct ctl *ctl, int argc, char **argv)
{
	int i;

	ctl->create.instance_id = ctl->id;
	ctl->create.label_keys = ctl->label_keys;
	ctl->create.label_values = ctl->label_values;
	for (i = 0; i < argc; i += 2) {
		if (i + 1 >= argc)
			return bad_usage("option '%s' needs a value", argv[i]);
		if (parse_create_opt(ctl, argv[i], argv[i + 1]) < 0)
			return -1;
	}
	if (ctl->create.pack_id == NULL)
		return bad_usage("create needs --pack");
	return 0;
}

static int parse_event(struct ctl *ctl, int argc, char **argv)
{
	char err[256];

	ctl->name = argv[0];
	if (argc < 2)
		return 0;
	if (vjson_parse(argv[1], VAL_MAX_DEPTH_DEFAULT, &ctl->payload, err, sizeof(err)) < 0) {
		fprintf(stderr, "moonpenctl: bad PAYLOAD_JSON: %s\n", err);
		return -1;
	}
	return 0;
}

static int parse_tick(struct ctl *ctl, int argc, char **argv)
{
	uint64_t n = 1;

	if (argc > 0 && parse_u64(argv[0], UINT32_MAX, &n) < 0)
		return bad_usage("COUNT wants an unsigned integer, got '%s'", argv[0]);
	ctl->count = (uint32_t)n;
	return 0;
}

static int parse_args_array(struct ctl *ctl, const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr), *item;
	char err[256];
	size_t i;
	int r = -1;

	if (j == NULL || !json_is_array(j)) {
		fprintf(stderr, "moonpenctl: bad ARGS_JSON_ARRAY: %s\n",
			j == NULL ? jerr.text : "not a JSON array");
		goto out;
	}
	ctl->args = calloc(json_array_size(j) + 1, sizeof(*ctl->args));
	if (ctl->args == NULL) {
		fprintf(stderr, "moonpenctl: out of memory\n");
		goto out;
	}
	json_array_foreach(j, i, item)
	{
		if (vjson_from_json(item, VAL_MAX_DEPTH_DEFAULT, &ctl->args[i], err, sizeof(err)) <
		    0) {
			fprintf(stderr, "moonpenctl: bad ARGS_JSON_ARRAY element %zu: %s\n", i + 1,
				err);
			goto out;
		}
		ctl->nargs = i + 1;
	}
	r = 0;
out:
	json_decref(j);
	return r;
}

static int parse_call(struct ctl *ctl, int argc, char **argv)
{
	ctl->name = argv[0];
	if (argc < 2)
		return 0;
	return parse_args_array(ctl, argv[1]);
}

static int parse_snapshot(struct ctl *ctl, int argc, char **argv)
{
	if (argc == 0)
		return 0;
	if (argc != 2 || strcmp(argv[0], "--out") != 0)
		return bad_usage("snapshot takes ID [--out FILE]");
	ctl->out_file = argv[1];
	return 0;
}

/* Reads a snapshot file: at most the largest snapshot moonpend accepts. */
static int parse_restore(struct ctl *ctl, int argc, char **argv)
{
	const size_t max = 16u << 20;
	FILE *f = fopen(argv[0], "rb");
	int r = -1;

	(void)argc;
	if (f == NULL) {
		fprintf(stderr, "moonpenctl: cannot open '%s': %s\n", argv[0], strerror(errno));
		return -1;
	}
	ctl->blob = malloc(max + 1);
	if (ctl->blob == NULL) {
		fprintf(stderr, "moonpenctl: out of memory\n");
		goto out;
	}
	ctl->bloblen = fread(ctl->blob, 1, max + 1, f);
	if (ferror(f))
		fprintf(stderr, "moonpenctl: cannot read '%s'\n", argv[0]);
	else if (ctl->bloblen == 0 || ctl->bloblen > max)
		fprintf(stderr, "moonpenctl: '%s' must hold 1 byte to 16 MiB\n", argv[0]);
	else
		r = 0;
out:
	fclose(f);
	return r;
}

static int parse_rollback(struct ctl *ctl, int argc, char **argv)
{
	(void)argc;
	if (parse_u64(argv[0], UINT64_MAX, &ctl->number) < 0)
		return bad_usage("TICK wants an unsigned integer, got '%s'", argv[0]);
	return 0;
}

static int parse_answer(struct ctl *ctl, int argc, char **argv)
{
	char err[256];

	if (parse_u64(argv[0], UINT64_MAX, &ctl->number) < 0 || ctl->number == 0)
		return bad_usage("CALL_ID wants a positive integer, got '%s'", argv[0]);
	if (strcmp(argv[1], "--error") == 0) {
		if (argc != 3)
			return bad_usage("--error needs a MESSAGE");
		ctl->error = argv[2];
		return 0;
	}
	if (argc != 2)
		return bad_usage(
		    "answer takes ID CALL_ID VALUE_JSON or ID CALL_ID --error MESSAGE");
	if (vjson_parse(argv[1], VAL_MAX_DEPTH_DEFAULT, &ctl->payload, err, sizeof(err)) < 0) {
		fprintf(stderr, "moonpenctl: bad VALUE_JSON: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---- runners ----------------------------------------------------------------------------------
 */

static int run_create(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_create(c, &ctl->create, out);
}

static int run_event(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_event(c, ctl->id, ctl->name, ctl->payload, out);
}

static int run_tick(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_tick(c, ctl->id, ctl->count, out);
}

static int run_call(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_call(c, ctl->id, ctl->name, (const val_t *const *)ctl->args, ctl->nargs, out);
}

static int run_info(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_info(c, ctl->id, out);
}

static int run_list(struct ctl *ctl, mp_client *c, mp_response **out)
{
	(void)ctl;
	return mp_list(c, out);
}

static int run_close(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_close(c, ctl->id, out);
}

static int run_snapshot(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_snapshot(c, ctl->id, out);
}

static int run_restore(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_restore(c, ctl->id, ctl->blob, ctl->bloblen, out);
}

static int run_rollback(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_rollback(c, ctl->id, ctl->number, out);
}

static int run_trace(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_trace(c, ctl->id, out);
}

static int run_incident(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_incident(c, ctl->id, out);
}

static int run_answer(struct ctl *ctl, mp_client *c, mp_response **out)
{
	return mp_host_result(c, ctl->id, ctl->number, ctl->payload, ctl->error, out);
}

/* Positional counts include ID where the command takes one. */
static const struct cmd cmds[] = {
    {"create", 1, -1, parse_create, run_create},
    {"event", 2, 3, parse_event, run_event},
    {"tick", 1, 2, parse_tick, run_tick},
    {"call", 2, 3, parse_call, run_call},
    {"info", 1, 1, NULL, run_info},
    {"list", 0, 0, NULL, run_list},
    {"close", 1, 1, NULL, run_close},
    {"snapshot", 1, 3, parse_snapshot, run_snapshot},
    {"restore", 2, 2, parse_restore, run_restore},
    {"rollback", 2, 2, parse_rollback, run_rollback},
    {"trace", 1, 1, NULL, run_trace},
    {"incident", 1, 1, NULL, run_incident},
    {"answer", 3, 4, parse_answer, run_answer},
};

/* ---- main --------------------------------------------------------------------------------------
 */

static const struct cmd *find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Global options, then the command and its arguments. Returns the command or
 * NULL after a usage message. */
static const struct cmd *parse_cmdline(struct ctl *ctl, int argc, char **argv)
{
	const struct cmd *cmd;
	int i = 1, n;

	ctl->url = getenv("MOONPEN_URL");
	if (ctl->url == NULL || ctl->url[0] == '\0')
		ctl->url = MP_DEFAULT_URL;
	while (i < argc && strcmp(argv[i], "--url") == 0) {
		if (i + 1 >= argc)
			return bad_usage("--url needs a value"), NULL;
		ctl->url = argv[i + 1];
		i += 2;
	}
	if (i >= argc)
		return bad_usage("no command"), NULL;
	cmd = find_cmd(argv[i]);
	if (cmd == NULL)
		return bad_usage("unknown command '%s'", argv[i]), NULL;
	n = argc - i - 1;
	if (n < cmd->min_args || (cmd->max_args >= 0 && n > cmd->max_args))
		return bad_usage("wrong number of arguments for '%s'", cmd->name), NULL;
	if (cmd->min_args > 0)
		ctl->id = argv[i + 1];
	if (cmd->parse != NULL && cmd->parse(ctl, n - 1, argv + i + 2) < 0)
		return NULL;
	return cmd;
}

/* snapshot --out FILE: the blob goes to FILE, the JSON names the file and its
 * size instead of carrying the bytes. 0, or -1 (message on stderr). */
static int save_snapshot(const struct ctl *ctl, const mp_response *resp, json_t *j)
{
	FILE *f;
	int ok;

	if (resp->snapshot.len == 0)
		return 0; /* an error status: nothing to save */
	f = fopen(ctl->out_file, "wb");
	if (f == NULL) {
		fprintf(stderr, "moonpenctl: cannot create '%s': %s\n", ctl->out_file,
			strerror(errno));
		return -1;
	}
	ok = fwrite(resp->snapshot.data, 1, resp->snapshot.len, f) == resp->snapshot.len;
	ok = fclose(f) == 0 && ok;
	if (!ok) {
		fprintf(stderr, "moonpenctl: cannot write '%s'\n", ctl->out_file);
		return -1;
	}
	json_object_del(j, "snapshot");
	if (json_object_set_new(j, "snapshot_file", json_string(ctl->out_file)) < 0 ||
	    json_object_set_new(j, "snapshot_bytes", json_integer((json_int_t)resp->snapshot.len)) <
		0)
		return -1;
	return 0;
}

/* Prints the reply as one JSON line; returns the exit status. */
static int print_reply(const struct ctl *ctl, const struct cmd *cmd, const mp_response *resp)
{
	json_t *j = mp_response_to_json(resp);
	char *s = NULL;

	if (j != NULL && resp != NULL && ctl->out_file != NULL && save_snapshot(ctl, resp, j) < 0) {
		json_decref(j);
		return EXIT_USAGE;
	}
	if (j != NULL && cmd->run == run_list && json_object_get(j, "instances") == NULL &&
	    json_object_set_new(j, "instances", json_array()) < 0) {
		json_decref(j);
		j = NULL;
	}
	if (j != NULL)
		s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (s == NULL) {
		fprintf(stderr, "moonpenctl: out of memory\n");
		return EXIT_USAGE;
	}
	printf("%s\n", s);
	free(s);
	return mp_status_code(resp) == MOONPEN__V1__STATUS__CODE__OK ? EXIT_OK : EXIT_STATUS;
}

static void ctl_free(struct ctl *ctl)
{
	size_t i;

	val_free(ctl->payload);
	for (i = 0; ctl->args != NULL && ctl->args[i] != NULL; i++)
		val_free(ctl->args[i]);
	free(ctl->args);
	free(ctl->blob);
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	const struct cmd *cmd;
	mp_client *c = NULL;
	mp_response *resp = NULL;
	int r, status = EXIT_USAGE;

	memset(&ctl, 0, sizeof(ctl));
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return EXIT_OK;
	}
	/* 1. the command line, before anything touches the network */
	cmd = parse_cmdline(&ctl, argc, argv);
	if (cmd == NULL)
		goto out;
	/* 2. connect, send, wait for the reply */
	r = mp_connect(ctl.url, &c);
	if (r == 0)
		r = cmd->run(&ctl, c, &resp);
	if (r < 0) {
		fprintf(stderr, "moonpenctl: %s: %s%s%s%s\n", ctl.url, mp_strerror(r),
			c != NULL && mp_last_error(c)[0] != '\0' ? " (" : "",
			c != NULL ? mp_last_error(c) : "",
			c != NULL && mp_last_error(c)[0] != '\0' ? ")" : "");
		goto out;
	}
	/* 3. one JSON line on stdout */
	status = print_reply(&ctl, cmd, resp);
out:
	mp_response_free(resp);
	mp_disconnect(c);
	ctl_free(&ctl);
	return status;
}
