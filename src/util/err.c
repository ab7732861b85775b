/* Error text and version. */
#include <cp2p/common.h>

const char *cp2p_strerror(int err)
{
    switch ((cp2p_err)err) {
    case CP2P_OK: return "success";
    case CP2P_ENOMEM: return "out of memory";
    case CP2P_EINVAL: return "invalid argument";
    case CP2P_ENOTSUP: return "not supported";
    case CP2P_EIO: return "I/O error";
    case CP2P_ENOENT: return "not found";
    case CP2P_EPERM: return "refused: unsafe permissions";
    case CP2P_ENOSPC: return "output buffer too small";
    case CP2P_ESTATE: return "invalid state for this operation";
    case CP2P_ECLOSED: return "closed";
    case CP2P_ECANCELED: return "canceled";
    case CP2P_ETIMEDOUT: return "timed out";
    case CP2P_EFULL: return "queue full";
    case CP2P_EOF: return "end of stream";
    case CP2P_ERESET: return "stream reset";
    case CP2P_EPROTO: return "protocol error (malformed input)";
    case CP2P_ELIMIT: return "limit exceeded";
    case CP2P_EBADSIG: return "invalid signature";
    case CP2P_EPEERID: return "peer ID mismatch";
    }
    return "unknown error";
}

const char *cp2p_version(void)
{
    return CP2P_VERSION_STRING;
}
