/* Batching emitter core (seed 003: Hyperledger Fabric gossip's batchingEmitter), sans-I/O.
 * The public API in <cp2p/emitter.h> IS this core, exported as is: one implementation, no
 * binding. A binding (a libuv timer plus the host's peer list and stream writes) arms its timer
 * from cp2p_emitter_next_deadline() and calls cp2p_emitter_tick(); nothing here touches I/O,
 * the clock or a randomness source (the process key of the peer-ID hash, src/util/hashmap.h,
 * changes no result). Loop thread (or any single owner thread) only. */
#ifndef CP2P_EMITTER_EMITTER_H
#define CP2P_EMITTER_EMITTER_H

#include <cp2p/emitter.h>

#endif
