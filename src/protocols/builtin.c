/* cp2p_host_new: the bare host (src/swarm) plus the built-in protocols. Living here keeps the
 * layering: protocols use the host, never the reverse. */
#include "protocols/builtin.h"
#include "swarm/swarm.h"

int cp2p_host_new(uv_loop_t *loop, const cp2p_host_config *cfg, cp2p_host **out)
{
    cp2p_host *h = NULL;
    int rc = cp2p__swarm_new(loop, cfg, &h);
    if (rc != 0) {
        return rc;
    }
    if ((rc = cp2p__ping_register(h)) != 0 || (rc = cp2p__identify_register(h)) != 0 ||
        (rc = cp2p__perf_register(h)) != 0) {
        cp2p_host_close(h, NULL, NULL);
        return rc;
    }
    *out = h;
    return 0;
}
