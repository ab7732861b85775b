/* Registration of the built-in protocols on a new host. */
#ifndef CP2P_PROTOCOLS_BUILTIN_H
#define CP2P_PROTOCOLS_BUILTIN_H

#include <cp2p/protocols.h>

CP2P_NODISCARD int cp2p__ping_register(cp2p_host *h);
CP2P_NODISCARD int cp2p__identify_register(cp2p_host *h);
CP2P_NODISCARD int cp2p__perf_register(cp2p_host *h);

#endif
