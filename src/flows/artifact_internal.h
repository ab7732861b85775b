/* What artifact_metrics.c needs of the binding (artifact_uv.c). Loop thread. */
#ifndef CP2P_FLOWS_ARTIFACT_INTERNAL_H
#define CP2P_FLOWS_ARTIFACT_INTERNAL_H

#include <cp2p/artifact.h>

typedef struct cp2p__artifact_metrics cp2p__artifact_metrics;
/* Where the binding keeps the metrics state (NULL until the first update). */
cp2p__artifact_metrics **cp2p__artifact_metrics_slot(cp2p_artifact *a);
/* Freed with the binding. NULL is fine. */
void cp2p__artifact_metrics_free(cp2p__artifact_metrics *m);

#endif
