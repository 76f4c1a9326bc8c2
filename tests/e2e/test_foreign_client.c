/*
 * End-to-end: a client that shares nothing with moonpen but the .proto file —
 * protoc (C++ protobuf) encodes the requests from text, nngcat sends them —
 * creates an instance and receives its effects.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/daemon.h"

static td D;

static void up(void)
{
	cr_assert_eq(td_start(&D, "examples/packs", NULL), 0);
}
static void down(void)
{
	cr_assert_eq(td_stop(&D, 0), 0, "log %s", D.log);
}

/* Encodes text as a moonpen.v1.Request, sends it with nngcat, decodes the
 * answer as text into out. */
static void roundtrip(const char *text, char *out, size_t outlen)
{
	char cmd[2048], path[300];
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "%s/req.txt", D.dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "protoc --proto_path=proto --encode=moonpen.v1.Request proto/moonpen.proto "
		 "< %s/req.txt > %s/req.bin && "
		 "timeout 10 nngcat --req --dial '%s' --raw --file %s/req.bin "
		 "> %s/resp.bin && "
		 "protoc --proto_path=proto --decode=moonpen.v1.Response proto/moonpen.proto "
		 "< %s/resp.bin",
		 D.dir, D.dir, D.url, D.dir, D.dir, D.dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	cr_assert_eq(pclose(f), 0, "pipeline failed: %s", cmd);
}

Test(foreign, protoc_and_nngcat, .init = up, .fini = down)
{
	char out[8192];

	roundtrip("id: 5 create { instance_id: \"ext-1\" pack_id: \"key-collection\" seed: 9 }",
		  out, sizeof out);
	cr_expect(strstr(out, "id: 5") != NULL, "%s", out);
	cr_expect(strstr(out, "instance_id: \"ext-1\"") != NULL, "%s", out);
	cr_expect(strstr(out, "code:") == NULL, "status must be OK (code omitted): %s", out);

	roundtrip("id: 6 event { instance_id: \"ext-1\" name: \"OnPickup:key\" "
		  "payload { table_value { map { key { string_value: \"player\" } "
		  "value { string_value: \"p9\" } } } } }",
		  out, sizeof out);
	cr_expect(strstr(out, "api: \"ui\"") != NULL, "%s", out);
	cr_expect(strstr(out, "fn: \"broadcast\"") != NULL, "%s", out);
	cr_expect(strstr(out, "string_value: \"Keys: 1/3\"") != NULL, "%s", out);

	roundtrip("id: 7 event { instance_id: \"nope\" name: \"x\" }", out, sizeof out);
	cr_expect(strstr(out, "code: NOT_FOUND") != NULL, "%s", out);
}
