/* Logging: level filter, per-module overrides, replaceable sink, no allocation. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/limits.h"
#include "util/log_internal.h"

typedef struct {
    char module[24];
    cp2p_log_level level;
} module_level;

/* Read on every log call from any thread, so atomic; overrides and sink are set at startup. */
static _Atomic int g_level = CP2P_LOG_INFO;
static module_level g_modules[CP2P_LOG_MODULE_OVERRIDES];
static size_t g_nmodules;
static cp2p_log_sink g_sink;
static void *g_sink_ud;
static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;

static const char *const LEVEL_NAMES[] = {"trace", "debug", "info", "warn", "error", "off"};

int cp2p_log_level_parse(const char *s, cp2p_log_level *out)
{
    for (int i = 0; i <= CP2P_LOG_OFF; i++) {
        if (s != NULL && strcmp(s, LEVEL_NAMES[i]) == 0) {
            *out = (cp2p_log_level)i;
            return 0;
        }
    }
    return CP2P_EINVAL;
}

static void read_env(void)
{
    cp2p_log_level l;
    const char *e = getenv("CP2P_LOG");
    if (e != NULL && cp2p_log_level_parse(e, &l) == 0) {
        atomic_store(&g_level, (int)l);
    }
}

void cp2p_log_set_level(cp2p_log_level level)
{
    pthread_once(&g_env_once, read_env);
    atomic_store(&g_level, (int)level);
}

cp2p_log_level cp2p_log_get_level(void)
{
    pthread_once(&g_env_once, read_env);
    return (cp2p_log_level)atomic_load(&g_level);
}

int cp2p_log_set_module_level(const char *module, cp2p_log_level level)
{
    if (module == NULL || module[0] == 0 || strlen(module) >= sizeof(g_modules[0].module)) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < g_nmodules; i++) {
        if (strcmp(g_modules[i].module, module) == 0) {
            g_modules[i].level = level;
            return 0;
        }
    }
    if (g_nmodules == CP2P_LOG_MODULE_OVERRIDES) {
        return CP2P_EFULL;
    }
    memcpy(g_modules[g_nmodules].module, module, strlen(module) + 1);
    g_modules[g_nmodules].level = level;
    g_nmodules++;
    return 0;
}

void cp2p_log_set_sink(cp2p_log_sink sink, void *ud)
{
    g_sink = sink;
    g_sink_ud = ud;
}

bool cp2p__log_enabled(cp2p_log_level level, const char *module)
{
    pthread_once(&g_env_once, read_env);
    for (size_t i = 0; i < g_nmodules; i++) {
        if (strcmp(g_modules[i].module, module) == 0) {
            return level >= g_modules[i].level && level < CP2P_LOG_OFF;
        }
    }
    return (int)level >= atomic_load(&g_level) && level < CP2P_LOG_OFF;
}

void cp2p__log(cp2p_log_level level, const char *module, uint64_t conn, const char *fmt, ...)
{
    char msg[CP2P_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (g_sink != NULL) {
        g_sink(level, module, conn, msg, g_sink_ud);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    int lvl = level < CP2P_LOG_OFF ? (int)level : CP2P_LOG_ERROR;
    /* One fprintf: stdio locks the stream, so lines from threads do not interleave. */
    fprintf(stderr, "%s.%03ldZ %-5s %s conn=%llu %s\n", when, ts.tv_nsec / 1000000L,
            LEVEL_NAMES[lvl], module, (unsigned long long)conn, msg);
}
