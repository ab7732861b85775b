/* cp2p command-line program. */
#include <stdio.h>
#include <string.h>

#include <cp2p/cp2p.h>

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("cp2p %s\n", cp2p_version());
        return 0;
    }
    fprintf(stderr, "usage: cp2p version\n");
    return 2;
}
