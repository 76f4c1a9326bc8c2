/*
 * luascan — lexical snapshot-safety checks of a Lua source (see luascan.h).
 * Runs in spk; the source is untrusted: every read is bounded by its length,
 * nesting is bounded, and nothing in it is executed.
 */
#include "tools/spk/luascan.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LS_MAX_DEPTH 200 /* block/bracket nesting followed; deeper: stop scanning */

enum tk_type { T_NAME, T_STRING, T_NUMBER, T_OP, T_EOF };

struct tok {
	enum tk_type type;
	const char *s; /* into the source */
	size_t len;
	unsigned line;
};

struct local {
	const char *name;
	size_t len;
	unsigned line;
	unsigned fdepth; /* function depth where declared (0: chunk level) */
};

enum fr_kind { FR_FUNCTION, FR_BLOCK, FR_BRACKET };

struct frame {
	enum fr_kind kind;
	size_t first_local; /* locals[first_local..] belong to this frame */
	int awaiting_do;    /* a for/while block opened before its "do" */
};

struct scan {
	struct tok *t;
	size_t n, cap;
	struct local *locals;
	size_t nloc, caploc;
	struct frame fr[LS_MAX_DEPTH];
	size_t nfr;
	unsigned fdepth;
	int findings;
	lscan_report report;
	void *arg;
};

/* ---- tokens ------------------------------------------------------------------ */

static int push_tok(struct scan *s, enum tk_type ty, const char *p, size_t len, unsigned line)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		struct tok *nt = realloc(s->t, ncap * sizeof *nt);
		if (nt == NULL)
			return -ENOMEM;
		s->t = nt;
		s->cap = ncap;
	}
	s->t[s->n++] = (struct tok){ty, p, len, line};
	return 0;
}

/* Length of a long bracket opening "[==[" at p (its level in *level), or 0. */
static size_t long_open(const char *p, const char *end, size_t *level)
{
	const char *q = p + 1;

	if (p >= end || *p != '[')
		return 0;
	while (q < end && *q == '=')
		q++;
	if (q >= end || *q != '[')
		return 0;
	*level = (size_t)(q - p - 1);
	return (size_t)(q - p + 1);
}

/* Skips past the matching "]==]"; counts lines. Returns the end position. */
static const char *long_skip(const char *p, const char *end, size_t level, unsigned *line)
{
	for (; p < end; p++) {
		if (*p == '\n')
			(*line)++;
		if (*p == ']' && (size_t)(end - p) > level + 1 && p[level + 1] == ']') {
			size_t i;
			for (i = 1; i <= level && p[i] == '='; i++)
				;
			if (i == level + 1)
				return p + level + 2;
		}
	}
	return end;
}

static const char *short_string(const char *p, const char *end, unsigned *line)
{
	char q = *p++;

	for (; p < end && *p != q; p++) {
		if (*p == '\\' && p + 1 < end) {
			p++;
			if (*p == '\n')
				(*line)++;
		} else if (*p == '\n') {
			(*line)++;
		}
	}
	return p < end ? p + 1 : end;
}

static const char *number_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if ((*p == '+' || *p == '-') && strchr("eEpP", p[-1]))
			continue;
		if (!isalnum((unsigned char)*p) && *p != '.')
			break;
	}
	return p;
}

static size_t op_len(const char *p, const char *end)
{
	static const char *const ops[] = {
	    "...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>"};
	size_t i, n;

	for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		n = strlen(ops[i]);
		if ((size_t)(end - p) >= n && memcmp(p, ops[i], n) == 0)
			return n;
	}
	return 1;
}

static int tokenize(struct scan *s, const char *p, const char *end)
{
	unsigned line = 1;
	size_t lv, n;
	int r = 0;

	while (r == 0 && p < end) {
		const char *st = p;
		if (*p == '\n') {
			line++;
			p++;
		} else if (isspace((unsigned char)*p)) {
			p++;
		} else if (*p == '-' && p + 1 < end && p[1] == '-') {
			p += 2;
			if ((n = long_open(p, end, &lv)) > 0)
				p = long_skip(p + n, end, lv, &line);
			else
				while (p < end && *p != '\n')
					p++;
		} else if ((n = long_open(p, end, &lv)) > 0) {
			unsigned l0 = line;
			p = long_skip(p + n, end, lv, &line);
			r = push_tok(s, T_STRING, st, (size_t)(p - st), l0);
		} else if (*p == '"' || *p == '\'') {
			unsigned l0 = line;
			p = short_string(p, end, &line);
			r = push_tok(s, T_STRING, st, (size_t)(p - st), l0);
		} else if (isalpha((unsigned char)*p) || *p == '_') {
			while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
				p++;
			r = push_tok(s, T_NAME, st, (size_t)(p - st), line);
		} else if (isdigit((unsigned char)*p) ||
			   (*p == '.' && p + 1 < end && isdigit((unsigned char)p[1]))) {
			p = number_end(p, end);
			r = push_tok(s, T_NUMBER, st, (size_t)(p - st), line);
		} else {
			p += op_len(p, end);
			r = push_tok(s, T_OP, st, (size_t)(p - st), line);
		}
	}
	return r == 0 ? push_tok(s, T_EOF, end, 0, line) : r;
}

/* ---- scopes --------------------------------------------------------------------- */

static int is(const struct tok *t, const char *w)
{
	return (t->type == T_NAME || t->type == T_OP) && t->len == strlen(w) &&
	       memcmp(t->s, w, t->len) == 0;
}

static int keyword(const struct tok *t)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else", "elseif", "end",
					 "false", "for",   "function", "goto", "if",	 "in",
					 "local", "nil",   "not",      "or",   "repeat", "return",
					 "then",  "true",  "until",    "while"};
	size_t i;

	for (i = 0; t->type == T_NAME && i < sizeof kw / sizeof kw[0]; i++)
		if (is(t, kw[i]))
			return 1;
	return 0;
}

static void finding(struct scan *s, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finding(struct scan *s, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s->findings++;
	s->report(s->arg, line, msg);
}

static int declare(struct scan *s, const struct tok *t)
{
	if (t->type != T_NAME || keyword(t))
		return 0;
	if (s->nloc == s->caploc) {
		size_t ncap = s->caploc ? s->caploc * 2 : 64;
		struct local *nl = realloc(s->locals, ncap * sizeof *nl);
		if (nl == NULL)
			return -ENOMEM;
		s->locals = nl;
		s->caploc = ncap;
	}
	s->locals[s->nloc++] = (struct local){t->s, t->len, t->line, s->fdepth};
	return 0;
}

static const struct local *resolve(const struct scan *s, const struct tok *t)
{
	size_t i;

	for (i = s->nloc; i-- > 0;)
		if (s->locals[i].len == t->len && memcmp(s->locals[i].name, t->s, t->len) == 0)
			return &s->locals[i];
	return NULL;
}

/* 0, or -1 when nesting is too deep to follow. */
static int push(struct scan *s, enum fr_kind k)
{
	if (s->nfr == LS_MAX_DEPTH)
		return -1;
	s->fr[s->nfr++] = (struct frame){k, s->nloc, 0};
	if (k == FR_FUNCTION)
		s->fdepth++;
	return 0;
}

/* 0, or -1 when the closer does not match (the scan stops). */
static int pop(struct scan *s, int bracket)
{
	struct frame *f;

	if (s->nfr == 0 || (s->fr[s->nfr - 1].kind == FR_BRACKET) != bracket)
		return -1;
	f = &s->fr[--s->nfr];
	s->nloc = f->first_local;
	if (f->kind == FR_FUNCTION)
		s->fdepth--;
	return 0;
}

static int top_is(const struct scan *s, enum fr_kind k)
{
	return s->nfr > 0 && s->fr[s->nfr - 1].kind == k;
}

/* ---- checks ---------------------------------------------------------------------- */

/* An assignment to the bare name t. */
static void check_assign(struct scan *s, const struct tok *t)
{
	const struct local *l;

	if (s->fdepth == 0 || keyword(t))
		return;
	l = resolve(s, t);
	if (l == NULL)
		finding(s, t->line,
			"assignment to global '%.*s' inside a function: globals are frozen once "
			"the entry chunk has run; keep durable data in `state`",
			(int)t->len, t->s);
	else if (l->fdepth == 0)
		finding(s, t->line,
			"assignment to '%.*s' (a local of the chunk, line %u) inside a function: "
			"data kept outside `state` is lost by a snapshot and restore",
			(int)t->len, t->s, l->line);
}

/* t[i] is the '(' of timer.every/after: its second argument must name a global. */
static void check_timer(struct scan *s, size_t i, const struct tok *fn)
{
	int depth = 0;
	size_t j;

	for (j = i + 1; j < s->n && s->t[j].type != T_EOF; j++) {
		if (is(&s->t[j], "(") || is(&s->t[j], "{") || is(&s->t[j], "["))
			depth++;
		else if (is(&s->t[j], ")") || is(&s->t[j], "}") || is(&s->t[j], "]"))
			if (--depth < 0)
				return;
		if (depth == 0 && is(&s->t[j], ","))
			break;
	}
	if (j + 1 >= s->n)
		return;
	if (is(&s->t[j + 1], "function"))
		finding(s, s->t[j + 1].line,
			"timer.%.*s with an anonymous function: name a global function "
			"(timer.%.*s(ms, \"fn\")) so that a snapshot can restore the timer",
			(int)fn->len, fn->s, (int)fn->len, fn->s);
	else if (s->t[j + 1].type == T_NAME && !keyword(&s->t[j + 1]) && resolve(s, &s->t[j + 1]))
		finding(s, s->t[j + 1].line,
			"timer.%.*s with the local function '%.*s': a timer must name a global "
			"function so that a snapshot can restore it",
			(int)fn->len, fn->s, (int)s->t[j + 1].len, s->t[j + 1].s);
}

/* "a, b, c =" starting at t[i]: checks every name; returns the index of '='
 * or i when it is not such a list. */
static size_t multi_assign(struct scan *s, size_t i)
{
	size_t j = i;

	while (s->t[j].type == T_NAME && !keyword(&s->t[j]) && is(&s->t[j + 1], ","))
		j += 2;
	if (s->t[j].type != T_NAME || keyword(&s->t[j]) || !is(&s->t[j + 1], "="))
		return i;
	for (j = i;; j += 2) {
		check_assign(s, &s->t[j]);
		if (is(&s->t[j + 1], "="))
			return j + 1;
	}
}

/* ---- the walk ----------------------------------------------------------------------- */

/* "local function f" / "local a, b <const> = ...": declares; returns the
 * index of the last token handled. */
static size_t on_local(struct scan *s, size_t i, int *r)
{
	size_t j = i + 1;

	if (is(&s->t[j], "function"))
		return (*r = declare(s, &s->t[j + 1])), j - 1; /* "function" handled next */
	while (s->t[j].type == T_NAME && !keyword(&s->t[j])) {
		if ((*r = declare(s, &s->t[j])) < 0)
			return j;
		j++;
		if (is(&s->t[j], "<") && s->t[j + 1].type == T_NAME && is(&s->t[j + 2], ">"))
			j += 3;
		if (!is(&s->t[j], ","))
			break;
		j++;
	}
	return j - 1;
}

/* "function [name[.x][:m]] (params)": checks a global definition inside a
 * function, opens the function and declares its parameters. */
static size_t on_function(struct scan *s, size_t i, int *r)
{
	size_t j = i + 1;
	int method = 0, local_fn = i > 0 && is(&s->t[i - 1], "local");

	if (s->t[j].type == T_NAME && !local_fn && !is(&s->t[j + 1], ".") && !is(&s->t[j + 1], ":"))
		check_assign(s, &s->t[j]);
	while (s->t[j].type == T_NAME || is(&s->t[j], ".") || is(&s->t[j], ":")) {
		method |= is(&s->t[j], ":");
		j++;
	}
	if (push(s, FR_FUNCTION) < 0 || !is(&s->t[j], "("))
		return (*r = -1), j;
	if (method && (*r = declare(s, &(struct tok){T_NAME, "self", 4, s->t[i].line})) < 0)
		return j;
	for (j++; s->t[j].type != T_EOF && !is(&s->t[j], ")"); j++)
		if ((*r = declare(s, &s->t[j])) < 0)
			return j;
	return j; /* the ')': the parameters are the function's locals */
}

/* "for a, b in" / "for i =": opens the loop's block and declares its names. */
static size_t on_for(struct scan *s, size_t i, int *r)
{
	size_t j;

	if (push(s, FR_BLOCK) < 0)
		return (*r = -1), i;
	s->fr[s->nfr - 1].awaiting_do = 1;
	for (j = i + 1; s->t[j].type == T_NAME || is(&s->t[j], ","); j++)
		if ((*r = declare(s, &s->t[j])) < 0)
			return j;
	return j - 1;
}

static size_t on_keyword(struct scan *s, size_t i, int *r)
{
	const struct tok *t = &s->t[i];

	if (is(t, "local"))
		return on_local(s, i, r);
	if (is(t, "function"))
		return on_function(s, i, r);
	if (is(t, "for"))
		return on_for(s, i, r);
	if (is(t, "do") && s->nfr > 0 && s->fr[s->nfr - 1].awaiting_do)
		s->fr[s->nfr - 1].awaiting_do = 0;
	else if (is(t, "do") || is(t, "if") || is(t, "repeat"))
		*r = push(s, FR_BLOCK);
	else if (is(t, "while") && (*r = push(s, FR_BLOCK)) == 0)
		s->fr[s->nfr - 1].awaiting_do = 1;
	else if (is(t, "end") || is(t, "until"))
		*r = pop(s, 0);
	return i;
}

static size_t on_name(struct scan *s, size_t i)
{
	const struct tok *t = &s->t[i], *prev = i > 0 ? &s->t[i - 1] : NULL;

	if (prev && (is(prev, ".") || is(prev, ":") || is(prev, "::") || is(prev, "goto")))
		return i;
	if (is(t, "ev") && is(&t[1], ".") && is(&t[2], "on") && is(&t[3], "(") && s->fdepth > 0)
		finding(s, t->line,
			"ev.on inside a function: register handlers at the top level of the chunk "
			"(a restore re-runs only the chunk)");
	if (is(t, "timer") && is(&t[1], ".") && (is(&t[2], "every") || is(&t[2], "after")) &&
	    is(&t[3], "("))
		check_timer(s, i + 3, &t[2]);
	if (top_is(s, FR_BRACKET))
		return i;
	if (is(&t[1], "=")) {
		check_assign(s, t);
		return i + 1;
	}
	return is(&t[1], ",") ? multi_assign(s, i) : i;
}

int lscan_check(const char *src, size_t len, lscan_report report, void *arg)
{
	struct scan s = {.report = report, .arg = arg};
	size_t i;
	int r = tokenize(&s, src, src + len);

	for (i = 0; r == 0 && i < s.n && s.t[i].type != T_EOF; i++) {
		const struct tok *t = &s.t[i];
		if (t->type == T_NAME && keyword(t))
			i = on_keyword(&s, i, &r);
		else if (t->type == T_NAME)
			i = on_name(&s, i);
		else if (is(t, "(") || is(t, "{") || is(t, "["))
			r = push(&s, FR_BRACKET);
		else if (is(t, ")") || is(t, "}") || is(t, "]"))
			r = pop(&s, 1);
	}
	free(s.t);
	free(s.locals);
	if (r == -ENOMEM)
		return r;
	return s.findings; /* r == -1: structure not followed further (deep or odd) */
}
