/*
 * diag — bounded error paths and messages (every process; trusts callers).
 */
#include "common/diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

size_t diag_path_push(diag_path *p, const char *fmt, ...)
{
	size_t old = p->len, room = sizeof(p->buf) - p->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		memcpy(p->buf + sizeof(p->buf) - 4, "...", 4);
		p->len = sizeof(p->buf) - 1;
	} else {
		p->len += (size_t)n;
	}
	return old;
}

void diag_path_pop(diag_path *p, size_t old)
{
	p->len = old;
	p->buf[old] = '\0';
}

const char *diag_path_str(const diag_path *p)
{
	return p->len > 0 ? p->buf : "(root)";
}

int diag_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}
