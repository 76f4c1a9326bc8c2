/*
 * log — structured JSON log lines (runs in every process; trusts its callers,
 * escapes every message so that script-controlled text cannot forge fields).
 */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_comp = "moonpen";
static enum log_level log_min = LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *component, enum log_level min)
{
	log_comp = component;
	log_min = min;
}

char *log_json_str(char *buf, unsigned long buflen, const char *s)
{
	unsigned long o = 0;

	if (buflen == 0)
		return buf;
	for (; s && *s && o + 7 < buflen; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			o += (unsigned long)snprintf(buf + o, buflen - o, "\\u%04x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	return buf;
}

static const char *log_level_name(enum log_level l)
{
	switch (l) {
	case LOG_DEBUG:
		return "debug";
	case LOG_INFO:
		return "info";
	case LOG_WARN:
		return "warn";
	default:
		return "error";
	}
}

void log_msg(enum log_level lvl, const char *fields, const char *fmt, ...)
{
	char msg[2048], esc[4096], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_json_str(esc, sizeof esc, msg);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mu);
	fprintf(stderr,
		"{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"comp\":\"%s\",\"pid\":%d,\"msg\":\"%s\"%"
		"s%s}\n",
		ts, now.tv_nsec / 1000000, log_level_name(lvl), log_comp, (int)getpid(), esc,
		fields ? "," : "", fields ? fields : "");
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
}
