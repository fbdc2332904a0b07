/*
 * settings.c - flag and variable parsing of the detection programs; see
 * settings.h. Nothing here knows a program's names: they come in through
 * struct settings and the arguments.
 */
#include "settings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

long long settings_number(const char *s, long long lo, long long hi)
{
    char *end;
    /* strtoll would take a sign or leading space: both are refused. */
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    return v;
}

int settings_fraction(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    /* Written as a range test that NaN fails. */
    return *s == '\0' || *end != '\0' || errno != 0 ||
                   !(*out >= 0.0 && *out <= 1.0)
               ? -1
               : 0;
}

int settings_slow(const char *s, const char *const *names, int n, int *stage,
                  long *pct)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == (size_t)(colon - s) &&
            strncmp(s, names[i], (size_t)(colon - s)) == 0) {
            long long p = settings_number(colon + 1, 1, 1000);
            if (p < 0)
                return -1;
            *stage = i;
            *pct = (long)p;
            return 0;
        }
    return -1;
}

int settings_parse(const struct settings *s, int argc, char **argv)
{
    for (size_t i = 0; i < s->nvars; i++) {
        const char *v = getenv(s->vars[i]);
        if (v != NULL && s->set(s->vars[i], v) != 0) {
            fprintf(stderr, "%s: bad value %s='%s' (see --help)\n", s->prog,
                    s->vars[i], v);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s->usage(stdout);
            exit(0);
        }
        if (s->set_switch(a))
            continue;
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc ||
            s->set(a + 2, argv[i + 1]) != 0) {
            fprintf(stderr, "%s: bad argument '%s%s%s'\n", s->prog, a,
                    i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
            s->usage(stderr);
            return 2;
        }
        i++;
    }
    return 0;
}
