/*
 * vfmt — Lua-like text of Values and effects for test assertions (test
 * processes only).
 */
#include "tests/support/vfmt.h"

#include <stdio.h>

/* Lua-like text of a value: tables as {a,b,k=v} in the tree's order. */
void tv_fmt_val(const val_t *v, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	switch (v ? v->kind_case : MOONPEN__V1__VALUE__KIND__NOT_SET) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		snprintf(buf, len, "%s", v->bool_value ? "true" : "false");
		return;
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		snprintf(buf, len, "%lld", (long long)v->int_value);
		return;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		snprintf(buf, len, "%.17g", v->float_value);
		return;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		snprintf(buf, len, "\"%s\"", v->string_value);
		return;
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		break;
	default:
		snprintf(buf, len, "nil");
		return;
	}
	n += (size_t)snprintf(buf + n, len - n, "{");
	for (size_t i = 0; i < v->table_value->n_array && n < len; i++) {
		char item[512];
		tv_fmt_val(v->table_value->array[i], item, sizeof(item));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", item);
	}
	for (size_t i = 0; i < v->table_value->n_map && n < len; i++) {
		char k[256], item[512];
		const val_t *key = v->table_value->map[i]->key;
		if (key->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE)
			snprintf(k, sizeof(k), "%s", key->string_value);
		else
			tv_fmt_val(key, k, sizeof(k));
		tv_fmt_val(v->table_value->map[i]->value, item, sizeof(item));
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%s",
				      i || v->table_value->n_array ? "," : "", k, item);
	}
	if (n < len)
		snprintf(buf + n, len - n, "}");
}

/* "api.fn(arg,arg) @trigger" */
void tv_fmt_effect(const Moonpen__V1__Effect *ef, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s.%s(", ef->api, ef->fn);

	for (size_t i = 0; i < ef->n_args && n < len; i++) {
		char item[512];
		tv_fmt_val(ef->args[i], item, sizeof(item));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", item);
	}
	if (n < len)
		snprintf(buf + n, len - n, ") @%s", ef->trigger_id);
}
