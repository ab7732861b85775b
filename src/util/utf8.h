/* UTF-8 validation for text that arrives from peers or users. Internal. */
#ifndef CP2P_UTIL_UTF8_H
#define CP2P_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). The empty string is valid. */
bool cp2p__utf8_valid(const uint8_t *s, size_t len);

#endif
