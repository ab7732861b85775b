/* cp2p: the umbrella header. */
#ifndef CP2P_CP2P_H
#define CP2P_CP2P_H

#include <cp2p/common.h>
#include <cp2p/buf.h>
#include <cp2p/codec.h>
#include <cp2p/log.h>
#include <cp2p/peer_id.h>
#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>
#include <cp2p/multiformats.h>

#endif
