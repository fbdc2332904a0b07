/*
 * settings.h - flags and environment variables of the detection programs
 * (detect_workflow and detect_server).
 *
 * Each program keeps its own option struct, names and ranges; this module
 * holds the parsing both do the same way: whole-string numbers, STAGE:PCT,
 * and the order of it all (variables first, flags after, so that a flag
 * wins), with the same messages and exit statuses.
 */
#ifndef DETECT_SETTINGS_H
#define DETECT_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

/*
 * settings_number - @s as a whole-string decimal in [@lo, @hi] (@lo >= 0):
 * digits only, no sign, no space. Returns the value, or -1.
 */
long long settings_number(const char *s, long long lo, long long hi);

/*
 * settings_fraction - @s as a number in [0, 1] into *@out.
 * Returns 0, or -1 when @s is empty, not all a number, or out of range.
 */
int settings_fraction(const char *s, double *out);

/*
 * settings_slow - "STAGE:PCT", STAGE one of the @n @names and PCT in
 * 1..1000, into *@stage (its index in @names) and *@pct.
 * Returns 0, or -1 (nothing set).
 */
int settings_slow(const char *s, const char *const *names, int n, int *stage,
                  long *pct);

/* What settings_parse needs to know of a program. */
struct settings {
    const char *prog;        /* prefix of the messages */
    const char *const *vars; /* environment variables read, in order */
    size_t nvars;
    /* One setting from a flag's name (without "--") or a variable's;
     * 0, or -1 when unknown or bad. */
    int (*set)(const char *what, const char *v);
    /* 1 when @flag (with "--") is a switch, taking no value, now set. */
    int (*set_switch)(const char *flag);
    void (*usage)(FILE *to); /* the usage text */
};

/*
 * settings_parse - every variable of @s that is set, then every flag of
 * @argv: "--name value" pairs and switches. --help or -h prints the usage
 * to stdout and exits 0. Returns 0, or 2 after a message naming the bad
 * variable or argument (with the usage, for an argument) on stderr.
 */
int settings_parse(const struct settings *s, int argc, char **argv);

#endif
