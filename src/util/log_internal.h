/* Internal logging macro (STYLE.md section 9). The level is checked before any formatting. */
#ifndef CP2P_UTIL_LOG_INTERNAL_H
#define CP2P_UTIL_LOG_INTERNAL_H

#include <stdbool.h>

#include <cp2p/log.h>

bool cp2p__log_enabled(cp2p_log_level level, const char *module);
void cp2p__log(cp2p_log_level level, const char *module, uint64_t conn, const char *fmt, ...)
    CP2P_PRINTF(4, 5);

/* CP2P_LOG(CP2P_LOG_INFO, "yamux", conn_id, "yamux.oversize_frame len=%u why=%s", n, why);
 * Start the message with its stable event tag, which is also the counter's name. */
#define CP2P_LOG(level, module, conn, ...)                                                     \
    do {                                                                                       \
        if (cp2p__log_enabled((level), (module))) {                                            \
            cp2p__log((level), (module), (conn), __VA_ARGS__);                                 \
        }                                                                                      \
    } while (0)

#endif
