/* cp2p: logging. Lines go to stderr unless a sink is set; nothing is allocated. */
#ifndef CP2P_LOG_H
#define CP2P_LOG_H

#include <cp2p/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cp2p_log_level {
    CP2P_LOG_TRACE = 0,
    CP2P_LOG_DEBUG = 1,
    CP2P_LOG_INFO = 2,
    CP2P_LOG_WARN = 3,
    CP2P_LOG_ERROR = 4,
    CP2P_LOG_OFF = 5,
} cp2p_log_level;

/* One formatted record. `module` is a short tag ("yamux"), `conn` a connection id or 0,
 * `msg` the formatted text without newline. All pointers are borrowed for the call. */
typedef void (*cp2p_log_sink)(cp2p_log_level level, const char *module, uint64_t conn,
                              const char *msg, void *ud);

/* Global minimum level (default INFO, or the CP2P_LOG environment variable read on first use:
 * trace|debug|info|warn|error|off). Any thread. */
CP2P_API void cp2p_log_set_level(cp2p_log_level level);
CP2P_API cp2p_log_level cp2p_log_get_level(void);
/* Per-module override: level for lines tagged `module` (up to 16 overrides). Returns 0,
 * CP2P_EINVAL for a bad name, CP2P_EFULL when 16 are set. Call before starting threads. */
CP2P_API CP2P_NODISCARD int cp2p_log_set_module_level(const char *module, cp2p_log_level level);
/* Replace the sink (NULL restores stderr). Call before starting threads. */
CP2P_API void cp2p_log_set_sink(cp2p_log_sink sink, void *ud);
/* Parse "trace".."off". Returns 0 or CP2P_EINVAL. */
CP2P_API CP2P_NODISCARD int cp2p_log_level_parse(const char *s, cp2p_log_level *out);

#ifdef __cplusplus
}
#endif
#endif
