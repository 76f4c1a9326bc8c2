/*
 * log — structured JSON log lines on stderr (every process).
 *
 * One line per record: {"ts":"2026-11-21T05:41:38.123Z","level":"info",
 * "comp":"sup","msg":"...", <extra fields>}. Safe to call from any thread.
 */
#ifndef MOONPEN_LOG_H
#define MOONPEN_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the component name ("sup", "wrk", "ctl") and the lowest level printed. */
void log_init(const char *component, enum log_level min);

/* Prints one record. `fields` is either NULL or a JSON object body without the
 * braces (`"inst_id":"a","elapsed_ms":3`), already escaped by the caller with
 * log_json_str(). The message is escaped here. */
void log_msg(enum log_level lvl, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s as a JSON string body (no quotes) into buf; truncates safely.
 * Returns buf. */
char *log_json_str(char *buf, unsigned long buflen, const char *s);

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
