/* Logging: one JSON line per event on stderr. */
#include "fv_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fv_json.h"

int fv_log_current_level = FV_LOG_INFO;
static const char *log_proc = "fieldvault";

static const char *level_names[] = {"error", "warn", "info", "debug"};

void fv_log_init(const char *proc_name, fv_log_level level)
{
    log_proc = proc_name;
    fv_log_current_level = (int)level;
}

int fv_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

/* The time now as RFC 3339 UTC with milliseconds ("2026-12-02T07:47:55.123Z"). */
static void format_ts(char out[64])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char secs[32];
    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 64, "%s.%03dZ", secs, (int)(tv.tv_usec / 1000));
}

void fv_log_write(fv_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char esc[4200];
    fv_json_escape(msg, strlen(msg), esc, sizeof esc);

    char ts[64];
    format_ts(ts);

    char line[4600];
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%d,\"msg\":\"%s\"}\n", ts,
                     level_names[level], log_proc, (int)getpid(), esc);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    /* One write(2) per line so lines from several processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void fv_log_raw_json(const char *json)
{
    if (json[0] != '{') return;
    char ts[64];
    format_ts(ts);
    char buf[8192];
    /* {"ts":..,"pid":.., then the object's own members (or nothing more for "{}") */
    int n = snprintf(buf, sizeof buf, "{\"ts\":\"%s\",\"pid\":%d%s%s\n", ts, (int)getpid(),
                     json[1] == '}' ? "" : ",", json + 1);
    if (n > 0 && (size_t)n < sizeof buf) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
        (void)w;
    }
}
