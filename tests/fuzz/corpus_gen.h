/* For the corpus generators built into some fuzz targets (-D..._GEN_CORPUS): write one seed,
 * a leading mode byte and the bytes, to DIR/NAME. Aborts on any I/O error. */
#ifndef CP2P_TESTS_FUZZ_CORPUS_GEN_H
#define CP2P_TESTS_FUZZ_CORPUS_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void corpus_put(const char *dir, const char *name, uint8_t mode, const uint8_t *p,
                       size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(&mode, 1, 1, f) != 1 || fwrite(p, 1, len, f) != len) {
        abort();
    }
    fclose(f);
}

#endif
