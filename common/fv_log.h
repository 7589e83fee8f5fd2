/* Logging: one JSON line per event on stderr, filtered by level before arguments are evaluated. */
#ifndef FV_LOG_H
#define FV_LOG_H

#include <stdarg.h>

typedef enum {
    FV_LOG_ERROR = 0,
    FV_LOG_WARN = 1,
    FV_LOG_INFO = 2,
    FV_LOG_DEBUG = 3,
} fv_log_level;

extern int fv_log_current_level;

/* Names the process in every line ("frontend", "worker", ...). Borrows name (must outlive use). */
void fv_log_init(const char *proc_name, fv_log_level level);
/* Parses "error"/"warn"/"info"/"debug"; returns -1 if unknown. */
int fv_log_parse_level(const char *s);

/* Writes one line: {"ts":..,"level":..,"proc":..,"pid":..,"msg":..}. Never call with secrets. */
void fv_log_write(fv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes a preformatted JSON object line (the access log) with "ts" and "pid" put first, as in
 * fv_log_write's lines; `json` must be a complete object without those two members. */
void fv_log_raw_json(const char *json);

#define fv_log(level, ...)                                                            \
    do {                                                                              \
        if ((int)(level) <= fv_log_current_level) fv_log_write((level), __VA_ARGS__); \
    } while (0)
#define fv_error(...) fv_log(FV_LOG_ERROR, __VA_ARGS__)
#define fv_warn(...) fv_log(FV_LOG_WARN, __VA_ARGS__)
#define fv_info(...) fv_log(FV_LOG_INFO, __VA_ARGS__)
#define fv_debug(...) fv_log(FV_LOG_DEBUG, __VA_ARGS__)

#endif
