/* The node's config file: one option per line, `name = value`, where every name is a long flag
 * of `cp2p node` (so every option is also a flag, and the flag documentation is the config
 * documentation). `#` starts a comment; values may be quoted; `name = true` stands for a flag
 * without a value and `false` leaves it out. Repeatable flags may repeat. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CONFIG_MAX_BYTES (64 * 1024)
#define CONFIG_MAX_ARGS 256

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = 0;
    }
    return s;
}

static int push(char **args, int *n, const char *s)
{
    if (*n >= CONFIG_MAX_ARGS) {
        return -1;
    }
    args[*n] = strdup(s);
    if (args[*n] == NULL) {
        return -1;
    }
    (*n)++;
    return 0;
}

int cli_config_load(const char *path, int *argc_out, char ***argv_out)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    char **args = calloc(CONFIG_MAX_ARGS + 1, sizeof(char *));
    int n = 0, lineno = 0;
    size_t total = 0;
    if (f == NULL || args == NULL) {
        fprintf(stderr, "cp2p: cannot read config %s: %s\n", path,
                f == NULL ? strerror(errno) : "out of memory");
        if (f != NULL) {
            fclose(f);
        }
        free(args);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        total += strlen(line);
        if (total > CONFIG_MAX_BYTES || (strchr(line, '\n') == NULL && !feof(f))) {
            fprintf(stderr, "cp2p: %s:%d: line or file too long\n", path, lineno);
            goto fail;
        }
        line[strcspn(line, "\n")] = 0;
        char *hash = strchr(line, '#');
        if (hash != NULL && (strchr(line, '"') == NULL || hash < strchr(line, '"'))) {
            *hash = 0; /* a comment, unless the # sits inside a quoted value */
        }
        char *s = trim(line);
        if (*s == 0) {
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            fprintf(stderr, "cp2p: %s:%d: expected 'name = value'\n", path, lineno);
            goto fail;
        }
        *eq = 0;
        char *name = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = 0;
            value++;
        }
        if (*name == 0 || strspn(name, "abcdefghijklmnopqrstuvwxyz-_") != strlen(name)) {
            fprintf(stderr, "cp2p: %s:%d: bad option name '%s'\n", path, lineno, name);
            goto fail;
        }
        for (char *p = name; *p; p++) {
            *p = *p == '_' ? '-' : *p; /* max_conns and max-conns are the same option */
        }
        char flag[128];
        snprintf(flag, sizeof(flag), "--%s", name);
        if (strcmp(value, "false") == 0) {
            continue;
        }
        if (push(args, &n, flag) != 0 || (strcmp(value, "true") != 0 && push(args, &n, value) != 0)) {
            fprintf(stderr, "cp2p: %s: too many options\n", path);
            goto fail;
        }
    }
    fclose(f);
    *argc_out = n;
    *argv_out = args;
    return 0;
fail:
    fclose(f);
    cli_config_free(n, args);
    return -1;
}

void cli_config_free(int argc, char **argv)
{
    for (int i = 0; argv != NULL && i < argc; i++) {
        free(argv[i]);
    }
    free(argv);
}
