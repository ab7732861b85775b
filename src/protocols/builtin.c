/* cp2p_host_new: the bare host (src/swarm) plus the built-in protocols, each a service of the
 * host (cp2p/service.h). Living here keeps the layering: protocols use the host, never the
 * reverse. */
#include <cp2p/service.h>

#include "protocols/builtin.h"
#include "swarm/host_new.h"

int cp2p__builtin_serve(cp2p_host *h, const char *name, const char *protocol,
                        void (*inbound)(cp2p_service *, cp2p_stream *, void *))
{
    const char *const protos[] = {protocol};
    cp2p_service_desc d = {
        .name = name,
        .protocols = protos,
        .n_protocols = 1,
        .inbound = inbound,
    };
    cp2p_service *svc;
    return cp2p_host_add_service(h, &d, NULL, &svc);
}

int cp2p_host_new(uv_loop_t *loop, const cp2p_host_config *cfg, cp2p_host **out)
{
    cp2p_host *h = NULL;
    int rc = cp2p__swarm_new(loop, cfg, &h);
    if (rc != 0) {
        return rc;
    }
    if ((rc = cp2p__ping_register(h)) != 0 ||
        (cfg->perf_server && (rc = cp2p__perf_register(h)) != 0)) {
        cp2p_host_close(h, NULL, NULL);
        return rc;
    }
    *out = h;
    return 0;
}
