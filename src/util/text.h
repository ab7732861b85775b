/* Small character helpers shared by the text parsers (hex, multiaddr). Internal. */
#ifndef CP2P_UTIL_TEXT_H
#define CP2P_UTIL_TEXT_H

/* The value of a hex digit (either case), or -1. */
static inline int cp2p__hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

#endif
