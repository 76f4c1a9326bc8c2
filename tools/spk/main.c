/*
 * spk — the pack author's tool. Runs on the author's machine, unconfined; it
 * never runs pack code itself (run and replay start real confined workers,
 * lint only compiles). Reads packs, events, answers and traces as untrusted.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "tools/spk/spk.h"

static const char usage[] =
    "usage: spk COMMAND ...\n"
    "\n"
    "  spk run PACK_DIR --events FILE.jsonl [--seed N] [--tick-ms MS]\n"
    "          [--record TRACE.json] [--host-api SCHEMA.json] [--answers FILE.jsonl]\n"
    "      runs the pack in a confined worker, one input per events line:\n"
    "        {\"event\": NAME, \"payload\": {...}}  {\"tick\": N}  {\"call\": FN, \"args\": "
    "[...]}\n"
    "      prints one JSON line per input; queries are answered from --answers\n"
    "      ({\"value\": ...} or {\"error\": \"...\"} per line, in order)\n"
    "  spk replay TRACE.json [--pack PACK_DIR] [--restore-every N] [--host-api SCHEMA.json]\n"
    "      re-runs a trace in a fresh worker and compares every input's outcome;\n"
    "      --restore-every N: snapshot, kill and restore the worker every N inputs;\n"
    "      the host API schema is the trace's own (host_api), --host-api overrides it\n"
    "      (the pack defaults to the folder holding the trace, if it is a pack)\n"
    "  spk init DIR [--id ID]\n"
    "      creates a minimal pack (manifest.json, main.lua, events.jsonl)\n"
    "  spk lint PACK_DIR [--host-api SCHEMA.json]\n"
    "      checks the manifest, the APIs it lists, the Lua syntax and the\n"
    "      snapshot-safety rules; prints FILE:LINE: findings\n"
    "  spk types [--schema SCHEMA.json] [--pack PACK_DIR] [-o FILE]\n"
    "      writes the Lua type declarations of the host API\n"
    "\n"
    "exit status: 0 ok, 1 divergence or findings, 2 usage or input error\n"
    "docs/spk.md and docs/trace-format.md describe the commands and the trace.\n";

static const struct cmd {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
    {"run", spk_cmd_run},   {"replay", spk_cmd_replay}, {"init", spk_cmd_init},
    {"lint", spk_cmd_lint}, {"types", spk_cmd_types},
};

int main(int argc, char **argv)
{
	size_t i;

	/* the worker's own log lines (passed through by wchan) and ours */
	log_init("spk", LOG_WARN);
	if (argc < 2)
		return fputs(usage, stderr), SPK_USAGE;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return fputs(usage, stdout), SPK_OK;
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "spk: unknown command \"%s\"\n\n%s", argv[1], usage);
	return SPK_USAGE;
}
