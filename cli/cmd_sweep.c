/*
 * cmd_sweep.c - `stageprof sweep --param NAME=V1,V2 ... -- CMD ARGS...`:
 * run a command once per combination of parameter values and repetition,
 * with tracing on, and compare the variants.
 *
 * Each run gets the parameters in its environment (NAME=value), `{NAME}`
 * in its arguments replaced by the value, STAGEPROF_ENABLE=1 and its own
 * STAGEPROF_DIR. Repetitions are interleaved across the variants, each
 * round starting one variant later, so the drift of a noisy machine
 * favours none.
 *
 * Layout of DIR (-o, default ./stageprof-sweep):
 *
 *   DIR/sweep.state              the plan, then one line per finished run
 *   DIR/<variant>/rep-<k>/       the run's STAGEPROF_DIR: its traces, and
 *                                stdout.txt, stderr.txt of the command
 *   DIR/summary.json             the comparison (as --format json prints)
 *   DIR/sweep.html               the comparison as a page with charts
 *
 * sweep.state is text, one record per line, appended and flushed as runs
 * end, so an interrupted sweep loses nothing that finished:
 *
 *   stageprof-sweep 1
 *   repeat N
 *   param NAME VALUE...          values %-encoded
 *   arg ARG                      the command and its arguments, %-encoded
 *   run VARIANT REP EXIT SECONDS one finished run (EXIT: status, 128+N for
 *                                signal N, -1 not started)
 *
 * The comparison is `diff`'s (diff.h): every variant against the first,
 * per stage and for the runs, and the throughput; the best variant for
 * throughput and for the runs' p99 is compared with the runner-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "diff.h"
#include "html_report.h"
#include "stats.h"
#include "util/json.h"
#include "util/strbuf.h"

#define MAX_PARAMS 8
#define MAX_VALUES 64
#define MAX_VARIANTS 1024
#define MAX_VALUE_LEN 256

struct param {
    char *name;
    char **values;
    size_t nvalues;
};

/* A finished (or failed) run. */
struct run {
    int done;
    int status; /* exit status; 128+N killed by signal N; -1 not started */
    double seconds;
};

struct sweep {
    struct param params[MAX_PARAMS];
    size_t nparams;
    long repeat;
    char **argv; /* the command */
    size_t argc;
    size_t nvariants;
    struct run *runs; /* [variant * repeat + rep - 1] */
    const char *dir;
    FILE *state;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Text helpers ------------------------------------------------------------ */

/* @s with every byte outside [A-Za-z0-9._,=+-] as %XX (into @out). */
static void encode(struct strbuf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("._,=+-", *p) != NULL)
            stageprof__sb_add(out, p, 1);
        else
            stageprof__sb_addf(out, "%%%02X", *p);
    }
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

/* Undo encode() in place; -1 on a bad escape. */
static int decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        int h = hexval(r[1]), l = h < 0 ? -1 : hexval(r[2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0))
            return -1;
        *w++ = (char)(h * 16 + l);
        r += 2;
    }
    *w = '\0';
    return 0;
}

static char *xstrdup(const struct cli_ctx *ctx, const char *s)
{
    char *c = strdup(s);
    if (c == NULL)
        cli_die(ctx, "out of memory");
    return c;
}

/* Values of variant @v, per parameter (mixed radix, the last fastest). */
static void variant_values(const struct sweep *w, size_t v, size_t *idx)
{
    for (size_t i = w->nparams; i-- > 0;) {
        idx[i] = v % w->params[i].nvalues;
        v /= w->params[i].nvalues;
    }
}

/* "NAME=value,NAME=value": the variant's label. */
static void variant_label(const struct sweep *w, size_t v, struct strbuf *out)
{
    size_t idx[MAX_PARAMS];
    variant_values(w, v, idx);
    for (size_t i = 0; i < w->nparams; i++)
        stageprof__sb_addf(out, "%s%s=%s", i ? "," : "", w->params[i].name,
                           w->params[i].values[idx[i]]);
}

/* DIR/<variant>/rep-<k> into @out. */
static void run_dir(const struct sweep *w, size_t v, long rep,
                    struct strbuf *out)
{
    struct strbuf label;
    stageprof__sb_init(&label, NULL, NULL);
    variant_label(w, v, &label);
    stageprof__sb_addf(out, "%s/", w->dir);
    encode(out, label.buf ? label.buf : "");
    stageprof__sb_addf(out, "/rep-%ld", rep);
    stageprof__sb_fini(&label);
}

/* Parameters -------------------------------------------------------------- */

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* --param NAME=V1,V2,...: 0, or -1 with the reason in @why. */
static int parse_param(const struct cli_ctx *ctx, struct sweep *w,
                       const char *arg, char *why, size_t len)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || !name_ok(arg, (size_t)(eq - arg))) {
        snprintf(why, len,
                 "wants NAME=V1,V2,... with NAME a letter or _ "
                 "then letters, digits, _");
        return -1;
    }
    if (w->nparams == MAX_PARAMS) {
        snprintf(why, len, "at most %d parameters", MAX_PARAMS);
        return -1;
    }
    size_t nlen = (size_t)(eq - arg);
    for (size_t i = 0; i < w->nparams; i++)
        if (strlen(w->params[i].name) == nlen &&
            memcmp(w->params[i].name, arg, nlen) == 0) {
            snprintf(why, len, "%.*s is given twice", (int)nlen, arg);
            return -1;
        }
    if (nlen == 15 && memcmp(arg, "STAGEPROF_ENABLE", 15) == 0) {
        snprintf(why, len, "STAGEPROF_ENABLE is the sweep's to set");
        return -1;
    }
    struct param *p = &w->params[w->nparams];
    memset(p, 0, sizeof *p);
    const char *v = eq + 1;
    for (;;) {
        const char *c = strchr(v, ',');
        size_t n = c ? (size_t)(c - v) : strlen(v);
        if (n == 0 || n > MAX_VALUE_LEN || memchr(v, '\n', n) != NULL) {
            snprintf(why, len,
                     "values must be 1 to %d bytes, without "
                     "newlines, between commas",
                     MAX_VALUE_LEN);
            goto bad;
        }
        if (p->nvalues == MAX_VALUES) {
            snprintf(why, len, "at most %d values", MAX_VALUES);
            goto bad;
        }
        char *val = malloc(n + 1);
        char **nv = realloc(p->values, (p->nvalues + 1) * sizeof *nv);
        if (val == NULL || nv == NULL)
            cli_die(ctx, "out of memory");
        memcpy(val, v, n);
        val[n] = '\0';
        p->values = nv;
        for (size_t i = 0; i < p->nvalues; i++)
            if (strcmp(p->values[i], val) == 0) {
                snprintf(why, len, "value '%s' is given twice", val);
                free(val);
                goto bad;
            }
        p->values[p->nvalues++] = val;
        if (c == NULL)
            break;
        v = c + 1;
    }
    p->name = malloc(nlen + 1);
    if (p->name == NULL)
        cli_die(ctx, "out of memory");
    memcpy(p->name, arg, nlen);
    p->name[nlen] = '\0';
    w->nparams++;
    return 0;
bad:
    for (size_t i = 0; i < p->nvalues; i++)
        free(p->values[i]);
    free(p->values);
    memset(p, 0, sizeof *p);
    return -1;
}

/* @arg with every {NAME} of a parameter replaced by variant @v's value;
 * other braces stay as they are. */
static char *substitute(const struct cli_ctx *ctx, const struct sweep *w,
                        size_t v, const char *arg)
{
    size_t idx[MAX_PARAMS];
    variant_values(w, v, idx);
    struct strbuf out;
    stageprof__sb_init(&out, NULL, NULL);
    const char *p = arg;
    while (*p) {
        size_t skip = 0;
        for (size_t i = 0; *p == '{' && i < w->nparams && !skip; i++) {
            size_t n = strlen(w->params[i].name);
            if (strncmp(p + 1, w->params[i].name, n) == 0 && p[1 + n] == '}') {
                stageprof__sb_adds(&out, w->params[i].values[idx[i]]);
                skip = n + 2;
            }
        }
        if (skip == 0) {
            stageprof__sb_add(&out, p, 1);
            skip = 1;
        }
        p += skip;
    }
    stageprof__sb_add(&out, "", 0);
    if (out.oom || out.buf == NULL)
        cli_die(ctx, "out of memory");
    return out.buf;
}

/* The state file ---------------------------------------------------------- */

static void state_path(const struct sweep *w, char *buf, size_t len)
{
    snprintf(buf, len, "%s/sweep.state", w->dir);
}

/* A new state file with the plan (the directory exists). */
static void state_create(const struct cli_ctx *ctx, struct sweep *w)
{
    char path[PATH_MAX];
    state_path(w, path, sizeof path);
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_addf(&sb, "stageprof-sweep 1\nrepeat %ld\n", w->repeat);
    for (size_t i = 0; i < w->nparams; i++) {
        stageprof__sb_addf(&sb, "param %s", w->params[i].name);
        for (size_t k = 0; k < w->params[i].nvalues; k++) {
            stageprof__sb_adds(&sb, " ");
            encode(&sb, w->params[i].values[k]);
        }
        stageprof__sb_adds(&sb, "\n");
    }
    for (size_t i = 0; i < w->argc; i++) {
        stageprof__sb_adds(&sb, "arg ");
        encode(&sb, w->argv[i]);
        stageprof__sb_adds(&sb, "\n");
    }
    FILE *f = fopen(path, "wx");
    if (f == NULL && errno == EEXIST)
        cli_usage_error(ctx,
                        "%s: a sweep is there already: --resume it, or "
                        "choose another -o",
                        path);
    if (f == NULL)
        cli_die(ctx, "%s: %s", path, strerror(errno));
    if (sb.oom || fwrite(sb.buf, 1, sb.len, f) != sb.len || fflush(f) != 0)
        cli_die(ctx, "%s: cannot write: %s", path, strerror(errno));
    stageprof__sb_fini(&sb);
    w->state = f;
}

/* Read the plan and the finished runs of an earlier sweep into @w. */
static void state_load(const struct cli_ctx *ctx, struct sweep *w)
{
    char path[PATH_MAX];
    state_path(w, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL && errno == ENOENT)
        cli_usage_error(ctx, "%s: no such file: nothing to resume", path);
    if (f == NULL)
        cli_die(ctx, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int header = 0;
    struct run *runs = NULL;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        char *sp = strchr(line, ' ');
        char *rest = sp ? sp + 1 : line + strlen(line);
        if (sp)
            *sp = '\0';
        if (lineno == 1) {
            header =
                strcmp(line, "stageprof-sweep") == 0 && strcmp(rest, "1") == 0;
            if (!header)
                break;
        } else if (strcmp(line, "repeat") == 0) {
            w->repeat = strtol(rest, NULL, 10);
        } else if (strcmp(line, "param") == 0 && w->nparams < MAX_PARAMS) {
            struct param *p = &w->params[w->nparams++];
            memset(p, 0, sizeof *p);
            char *save = NULL;
            char *tok = strtok_r(rest, " ", &save);
            p->name = xstrdup(ctx, tok ? tok : "");
            while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
                if (decode(tok) != 0 || p->nvalues == MAX_VALUES)
                    cli_die(ctx, "%s:%ld: a bad parameter value", path, lineno);
                p->values =
                    realloc(p->values, (p->nvalues + 1) * sizeof *p->values);
                if (p->values == NULL)
                    cli_die(ctx, "out of memory");
                p->values[p->nvalues++] = xstrdup(ctx, tok);
            }
        } else if (strcmp(line, "arg") == 0) {
            if (decode(rest) != 0)
                cli_die(ctx, "%s:%ld: a bad argument", path, lineno);
            w->argv = realloc(w->argv, (w->argc + 2) * sizeof *w->argv);
            if (w->argv == NULL)
                cli_die(ctx, "out of memory");
            w->argv[w->argc++] = xstrdup(ctx, rest);
            w->argv[w->argc] = NULL;
        } else if (strcmp(line, "run") == 0) {
            if (runs == NULL) {
                w->nvariants = 1;
                for (size_t i = 0; i < w->nparams; i++)
                    w->nvariants *=
                        w->params[i].nvalues ? w->params[i].nvalues : 1;
                if (w->repeat < 1 || w->repeat > 1000 || w->nvariants == 0 ||
                    w->nvariants > MAX_VARIANTS)
                    break;
                runs = calloc(w->nvariants * (size_t)w->repeat, sizeof *runs);
                if (runs == NULL)
                    cli_die(ctx, "out of memory");
            }
            unsigned long v;
            long rep;
            int status;
            double secs;
            if (sscanf(rest, "%lu %ld %d %lf", &v, &rep, &status, &secs) != 4 ||
                v >= w->nvariants || rep < 1 || rep > w->repeat)
                cli_die(ctx, "%s:%ld: a bad run line", path, lineno);
            struct run *r = &runs[v * (size_t)w->repeat + (size_t)rep - 1];
            r->done = 1;
            r->status = status;
            r->seconds = secs;
        }
    }
    free(line);
    fclose(f);
    if (!header || w->nparams == 0 || w->argc == 0 || w->repeat < 1 ||
        w->repeat > 1000)
        cli_die(ctx, "%s: not a sweep state this version writes", path);
    w->runs = runs;
    if ((w->state = fopen(path, "a")) == NULL)
        cli_die(ctx, "%s: %s", path, strerror(errno));
}

static void state_run(const struct cli_ctx *ctx, struct sweep *w, size_t v,
                      long rep, const struct run *r)
{
    if (fprintf(w->state, "run %zu %ld %d %.3f\n", v, rep, r->status,
                r->seconds) < 0 ||
        fflush(w->state) != 0 || fsync(fileno(w->state)) != 0)
        cli_die(ctx, "%s/sweep.state: cannot write: %s", w->dir,
                strerror(errno));
}

/* Running ----------------------------------------------------------------- */

/* mkdir -p @path; 0 or -1 (errno). */
static int make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0777);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Remove the files a run left in @dir (an interrupted attempt). */
static void clear_dir(const struct cli_ctx *ctx, const char *dir)
{
    struct cli_inputs in = {0};
    char err[64];
    /* Its traces; stdout.txt and stderr.txt are truncated when reopened. */
    if (cli_inputs_add(ctx, &in, dir, err, sizeof err) == 0)
        for (size_t i = 0; i < in.n; i++)
            if (strcmp(in.paths[i], dir) != 0)
                unlink(in.paths[i]);
    cli_inputs_free(&in);
}

/* Whether @cmd can be run: a path that is executable, or found in PATH. */
static int runnable(const char *cmd)
{
    if (strchr(cmd, '/') != NULL)
        return access(cmd, X_OK) == 0;
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char full[PATH_MAX];
        if (snprintf(full, sizeof full, "%.*s/%s", (int)(n ? n : 1),
                     n ? p : ".", cmd) < (int)sizeof full &&
            access(full, X_OK) == 0)
            return 1;
        if (c == NULL)
            return 0;
        p = c + 1;
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Run variant @v's repetition @rep; its status (see struct run). */
static int run_one(const struct cli_ctx *ctx, const struct sweep *w, size_t v,
                   long rep, long timeout_s)
{
    struct strbuf dir;
    stageprof__sb_init(&dir, NULL, NULL);
    run_dir(w, v, rep, &dir);
    if (dir.oom || make_dirs(dir.buf) != 0)
        cli_die(ctx, "%s: cannot create: %s", dir.buf ? dir.buf : w->dir,
                strerror(errno));
    clear_dir(ctx, dir.buf);
    char abs_dir[PATH_MAX];
    if (realpath(dir.buf, abs_dir) == NULL)
        cli_die(ctx, "%s: %s", dir.buf, strerror(errno));
    char **args = calloc(w->argc + 1, sizeof *args);
    if (args == NULL)
        cli_die(ctx, "out of memory");
    for (size_t i = 0; i < w->argc; i++)
        args[i] = substitute(ctx, w, v, w->argv[i]);
    char out_path[PATH_MAX + 16], err_path[PATH_MAX + 16];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", abs_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", abs_dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        cli_die(ctx, "cannot start a run: %s", strerror(errno));
    if (pid == 0) {
        size_t idx[MAX_PARAMS];
        variant_values(w, v, idx);
        for (size_t i = 0; i < w->nparams; i++)
            setenv(w->params[i].name, w->params[i].values[idx[i]], 1);
        setenv("STAGEPROF_ENABLE", "1", 1);
        setenv("STAGEPROF_DIR", abs_dir, 1);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        close(o);
        close(e);
        signal(SIGINT, SIG_DFL);
        execvp(args[0], args);
        dprintf(2, "stageprof sweep: cannot run %s: %s\n", args[0],
                strerror(errno));
        _exit(127);
    }
    double t0 = now_s();
    int status = 0, killed = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            cli_die(ctx, "waitpid: %s", strerror(errno));
        double t = now_s() - t0;
        if (timeout_s > 0 && t > (double)timeout_s && killed < 2) {
            kill(pid, killed ? SIGKILL : SIGTERM);
            killed++;
            t0 += 5; /* SIGKILL 5 s after SIGTERM */
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < w->argc; i++)
        free(args[i]);
    free(args);
    stageprof__sb_fini(&dir);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* The trace files of a run (a process and its children), or none. */
static void run_traces(const struct cli_ctx *ctx, const struct sweep *w,
                       size_t v, long rep, struct cli_inputs *in)
{
    struct strbuf dir;
    stageprof__sb_init(&dir, NULL, NULL);
    run_dir(w, v, rep, &dir);
    char err[64];
    struct stat st;
    if (!dir.oom && stat(dir.buf, &st) == 0 && S_ISDIR(st.st_mode))
        (void)cli_inputs_add(ctx, in, dir.buf, err, sizeof err);
    stageprof__sb_fini(&dir);
}

/* Comparing --------------------------------------------------------------- */

/* Variant @v's successful runs as side @side of @d; how many. */
static size_t add_variant(const struct cli_ctx *ctx, const struct sweep *w,
                          struct diff *d, int side, size_t v)
{
    size_t n = 0;
    for (long rep = 1; rep <= w->repeat; rep++) {
        const struct run *r = &w->runs[v * (size_t)w->repeat + (size_t)rep - 1];
        if (!r->done || r->status != 0)
            continue;
        struct cli_inputs in = {0};
        run_traces(ctx, w, v, rep, &in);
        if (in.n == 0) {
            cli_inputs_free(&in);
            continue;
        }
        diff_add_rep(ctx, d, side, in.paths, in.n, w->repeat == 1);
        n++;
        /* The diff refers to the paths: it keeps (and frees) them. */
        struct cli_inputs *keep = &d->in[side];
        char **all = realloc(keep->paths, (keep->n + in.n) * sizeof *all);
        if (all == NULL)
            cli_die(ctx, "out of memory");
        memcpy(all + keep->n, in.paths, in.n * sizeof *all);
        keep->paths = all;
        keep->n += in.n;
        keep->cap = keep->n;
        free(in.paths);
    }
    return n;
}

/* One variant against the baseline (or the runner-up). */
struct versus {
    struct diff d;
    size_t a, b; /* variants */
    size_t na, nb;
};

static void versus(const struct cli_ctx *ctx, const struct sweep *w,
                   struct versus *vs, size_t a, size_t b)
{
    diff_init(ctx, &vs->d);
    vs->a = a;
    vs->b = b;
    vs->d.arg[0] = vs->d.arg[1] = w->dir;
    vs->d.side_name[0] = vs->d.side_name[1] = "a run's trace";
    vs->na = add_variant(ctx, w, &vs->d, 0, a);
    vs->nb = add_variant(ctx, w, &vs->d, 1, b);
    if (vs->na > 0 && vs->nb > 0)
        diff_finish(ctx, &vs->d);
}

static const char *pct(char *buf, size_t len, double v)
{
    return diff_pct(buf, len, v, "-");
}

/* The best of the compared variants: highest median throughput (@by 0)
 * or lowest median runs p99 (@by 1); SIZE_MAX none. Also the runner-up. */
static size_t best_of(const struct versus *vs, size_t n, int by, size_t *second)
{
    size_t best = SIZE_MAX;
    *second = SIZE_MAX;
    double bv = 0, sv = 0;
    for (size_t i = 0; i < n; i++) {
        if (vs[i].na == 0 || vs[i].nb == 0)
            continue;
        const struct diff *d = &vs[i].d;
        /* Side 1 is the variant; the baseline's own row is vs[0] side 0. */
        double x = by == 0 ? d->throughput.fig[1][0] : d->e[0].fig[1][3];
        if (!isfinite(x))
            continue;
        int better = by == 0 ? x > bv : x < bv;
        if (best == SIZE_MAX || better) {
            *second = best;
            sv = bv;
            best = i;
            bv = x;
        } else if (*second == SIZE_MAX || (by == 0 ? x > sv : x < sv)) {
            *second = i;
            sv = x;
        }
    }
    return best;
}

struct report {
    size_t nv;         /* variants */
    struct versus *vs; /* vs[v]: variant v against the baseline, v >= 0 */
    int have_best[2];  /* throughput, p99 */
    size_t best[2], second[2];
    struct versus top[2]; /* best against the runner-up */
};

static void compare(const struct cli_ctx *ctx, const struct sweep *w,
                    struct report *rp)
{
    rp->nv = w->nvariants;
    rp->vs = calloc(rp->nv, sizeof *rp->vs);
    if (rp->vs == NULL)
        cli_die(ctx, "out of memory");
    for (size_t v = 0; v < rp->nv; v++)
        versus(ctx, w, &rp->vs[v], 0, v);
    for (int k = 0; k < 2; k++) {
        size_t second;
        size_t best = best_of(rp->vs, rp->nv, k, &second);
        rp->best[k] = best;
        rp->second[k] = second;
        rp->have_best[k] = best != SIZE_MAX && second != SIZE_MAX;
        if (rp->have_best[k])
            versus(ctx, w, &rp->top[k], second, best);
    }
}

/* "real" when the interval of the best against the runner-up excludes 0. */
static const char *real_or_not(const struct stats_change *c)
{
    if (!isfinite(c->lo) || !isfinite(c->hi))
        return "too few repetitions to tell";
    return c->lo > 0 || c->hi < 0 ? "the difference is real (its interval "
                                    "excludes 0)"
                                  : "not distinguishable (the interval "
                                    "holds 0)";
}

/* A variant's verdict against the baseline, or a word on why there is
 * none: with few repetitions the test cannot pass, the interval stands. */
static const char *verdict_of(const struct diff *d, const struct diff_entry *e,
                              int k)
{
    if (d->method == DIFF_REPS && d->reps_needed)
        return "(interval only)";
    return diff_verdict(d, e, k);
}

static const struct stats_change *best_change(const struct report *rp, int k)
{
    const struct diff *d = &rp->top[k].d;
    return k == 0 ? &d->throughput.cmp[0].change : &d->e[0].cmp[3].change;
}

static void print_text(const struct sweep *w, const struct report *rp)
{
    printf("%zu variants x %ld repetitions; each against %s\n\n", w->nvariants,
           w->repeat, "the first variant");
    printf("%-40s %5s %12s %30s %12s %30s\n", "variant", "runs", "throughput",
           "change [95%] verdict", "runs p99 ms", "change [95%] verdict");
    for (size_t v = 0; v < rp->nv; v++) {
        struct strbuf label;
        stageprof__sb_init(&label, NULL, NULL);
        variant_label(w, v, &label);
        const struct versus *x = &rp->vs[v];
        size_t ok = 0, failed = 0;
        for (long rep = 1; rep <= w->repeat; rep++) {
            const struct run *r =
                &w->runs[v * (size_t)w->repeat + (size_t)rep - 1];
            ok += r->done && r->status == 0;
            failed += r->done && r->status != 0;
        }
        char runs[32], b1[24], b2[24], b3[24], c1[96], c2[96];
        snprintf(runs, sizeof runs, "%zu/%ld", ok, w->repeat);
        if (x->na == 0 || x->nb == 0) {
            printf("%-40s %5s %12s %22s\n", label.buf, runs, "-",
                   failed ? "(failed runs)" : "(no trace)");
            stageprof__sb_fini(&label);
            continue;
        }
        const struct diff *d = &x->d;
        const struct stats_change *t = &d->throughput.cmp[0].change;
        const struct stats_change *p = &d->e[0].cmp[3].change;
        if (v == 0) {
            snprintf(c1, sizeof c1, "(baseline)");
            snprintf(c2, sizeof c2, "(baseline)");
        } else {
            snprintf(c1, sizeof c1, "%s [%s, %s] %s",
                     pct(b1, sizeof b1, t->point), pct(b2, sizeof b2, t->lo),
                     pct(b3, sizeof b3, t->hi),
                     verdict_of(d, &d->throughput, 0));
            snprintf(c2, sizeof c2, "%s [%s, %s] %s",
                     pct(b1, sizeof b1, p->point), pct(b2, sizeof b2, p->lo),
                     pct(b3, sizeof b3, p->hi), verdict_of(d, &d->e[0], 3));
        }
        printf("%-40s %5s %12.2f %30s %12.3f %30s\n", label.buf, runs,
               d->throughput.fig[1][0], c1, d->e[0].fig[1][3] / 1e6, c2);
        stageprof__sb_fini(&label);
    }
    static const char *const what[2] = {"throughput", "runs p99"};
    for (int k = 0; k < 2; k++) {
        if (rp->best[k] == SIZE_MAX)
            continue;
        struct strbuf a, b;
        stageprof__sb_init(&a, NULL, NULL);
        stageprof__sb_init(&b, NULL, NULL);
        variant_label(w, rp->best[k], &a);
        printf("\nbest for %s: %s", what[k], a.buf);
        if (rp->have_best[k]) {
            variant_label(w, rp->second[k], &b);
            const struct stats_change *c = best_change(rp, k);
            char b1[24], b2[24], b3[24];
            printf(" (%s [%s, %s] against %s: %s)",
                   pct(b1, sizeof b1, c->point), pct(b2, sizeof b2, c->lo),
                   pct(b3, sizeof b3, c->hi), b.buf, real_or_not(c));
        }
        printf("\n");
        stageprof__sb_fini(&a);
        stageprof__sb_fini(&b);
    }
    /* Per stage: p50 and p95 of each variant. */
    if (rp->vs[0].na > 0 && rp->vs[0].nb > 0 && rp->vs[0].d.common > 0) {
        const struct diff *base = &rp->vs[0].d;
        printf("\n%-32s", "stage p50 / p95 ms");
        for (size_t v = 0; v < rp->nv; v++) {
            struct strbuf label;
            stageprof__sb_init(&label, NULL, NULL);
            variant_label(w, v, &label);
            printf(" %18.18s", label.buf ? label.buf : "");
            stageprof__sb_fini(&label);
        }
        printf("\n");
        for (size_t i = 0; i < base->common; i++) {
            const struct diff_entry *e = base->order[i];
            char n[CLI_PRINTABLE_MAX];
            printf("%-32s", cli_printable(n, sizeof n, e->name));
            for (size_t v = 0; v < rp->nv; v++) {
                const struct diff *d = &rp->vs[v].d;
                const struct diff_entry *f = NULL;
                for (size_t j = 0; rp->vs[v].nb && j < d->common && !f; j++)
                    if (d->order[j]->name_len == e->name_len &&
                        memcmp(d->order[j]->name, e->name, e->name_len) == 0 &&
                        strcmp(d->order[j]->cat, e->cat) == 0)
                        f = d->order[j];
                if (f == NULL)
                    printf(" %18s", "-");
                else
                    printf(" %8.3f / %7.3f", f->fig[1][1] / 1e6,
                           f->fig[1][2] / 1e6);
            }
            printf("\n");
        }
    }
}

static void json_change(struct strbuf *sb, const struct stats_change *c)
{
    double v[3] = {c->point, c->lo, c->hi};
    static const char *const k[3] = {"rel", "lo", "hi"};
    stageprof__sb_adds(sb, "{");
    for (int i = 0; i < 3; i++) {
        stageprof__sb_addf(sb, "%s\"%s\":", i ? "," : "", k[i]);
        if (isfinite(v[i]))
            stageprof__sb_addf(sb, "%.17g", v[i]);
        else
            stageprof__sb_adds(sb, "null");
    }
    stageprof__sb_adds(sb, "}");
}

static void jnum(struct strbuf *sb, double v)
{
    if (isfinite(v))
        stageprof__sb_addf(sb, "%.17g", v);
    else
        stageprof__sb_adds(sb, "null");
}

static void summary_json(const struct sweep *w, const struct report *rp,
                         struct strbuf *sb)
{
    stageprof__sb_addf(sb, "{\"stageprof_sweep\":1,\"repeat\":%ld,\"params\":[",
                       w->repeat);
    for (size_t i = 0; i < w->nparams; i++) {
        stageprof__sb_adds(sb, i ? ",{\"name\":" : "{\"name\":");
        stageprof__json_str(sb, w->params[i].name, strlen(w->params[i].name));
        stageprof__sb_adds(sb, ",\"values\":[");
        for (size_t k = 0; k < w->params[i].nvalues; k++) {
            if (k)
                stageprof__sb_adds(sb, ",");
            stageprof__json_str(sb, w->params[i].values[k],
                                strlen(w->params[i].values[k]));
        }
        stageprof__sb_adds(sb, "]}");
    }
    stageprof__sb_adds(sb, "],\"command\":[");
    for (size_t i = 0; i < w->argc; i++) {
        if (i)
            stageprof__sb_adds(sb, ",");
        stageprof__json_str(sb, w->argv[i], strlen(w->argv[i]));
    }
    stageprof__sb_adds(sb, "],\"variants\":[");
    for (size_t v = 0; v < rp->nv; v++) {
        struct strbuf label;
        stageprof__sb_init(&label, NULL, NULL);
        variant_label(w, v, &label);
        stageprof__sb_adds(sb, v ? ",{\"variant\":" : "{\"variant\":");
        stageprof__json_str(sb, label.buf, label.len);
        stageprof__sb_fini(&label);
        stageprof__sb_adds(sb, ",\"runs\":[");
        for (long rep = 1; rep <= w->repeat; rep++) {
            const struct run *r =
                &w->runs[v * (size_t)w->repeat + (size_t)rep - 1];
            stageprof__sb_addf(sb, "%s{\"rep\":%ld,\"state\":\"%s\"",
                               rep > 1 ? "," : "", rep,
                               !r->done         ? "pending"
                               : r->status == 0 ? "done"
                                                : "failed");
            if (r->done)
                stageprof__sb_addf(sb, ",\"exit\":%d,\"seconds\":%.3f",
                                   r->status, r->seconds);
            stageprof__sb_adds(sb, "}");
        }
        stageprof__sb_adds(sb, "]");
        const struct versus *x = &rp->vs[v];
        if (x->na > 0 && x->nb > 0) {
            const struct diff *d = &x->d;
            stageprof__sb_adds(sb, ",\"throughput\":");
            jnum(sb, d->throughput.fig[1][0]);
            stageprof__sb_adds(sb, ",\"throughput_change\":");
            json_change(sb, &d->throughput.cmp[0].change);
            stageprof__sb_adds(sb, ",\"runs_p50_ns\":");
            jnum(sb, d->e[0].fig[1][1]);
            stageprof__sb_adds(sb, ",\"runs_p99_ns\":");
            jnum(sb, d->e[0].fig[1][3]);
            stageprof__sb_adds(sb, ",\"runs_p99_change\":");
            json_change(sb, &d->e[0].cmp[3].change);
            stageprof__sb_adds(sb, ",\"stages\":[");
            for (size_t i = 0; i < d->common; i++) {
                const struct diff_entry *e = d->order[i];
                stageprof__sb_adds(sb, i ? ",{\"name\":" : "{\"name\":");
                stageprof__json_str(sb, e->name, e->name_len);
                stageprof__sb_adds(sb, ",\"category\":");
                stageprof__json_str(sb, e->cat, e->cat_len);
                stageprof__sb_adds(sb, ",\"p50_ns\":");
                jnum(sb, e->fig[1][1]);
                stageprof__sb_adds(sb, ",\"p95_ns\":");
                jnum(sb, e->fig[1][2]);
                stageprof__sb_adds(sb, ",\"p50_change\":");
                json_change(sb, &e->cmp[1].change);
                stageprof__sb_adds(sb, ",\"p95_change\":");
                json_change(sb, &e->cmp[2].change);
                stageprof__sb_addf(sb, ",\"verdict\":\"%s\"}",
                                   diff_verdict(d, e, DIFF_P50));
            }
            stageprof__sb_adds(sb, "]");
        }
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, "]");
    static const char *const key[2] = {"best_throughput", "best_p99"};
    for (int k = 0; k < 2; k++) {
        stageprof__sb_addf(sb, ",\"%s\":", key[k]);
        if (rp->best[k] == SIZE_MAX) {
            stageprof__sb_adds(sb, "null");
            continue;
        }
        struct strbuf label;
        stageprof__sb_init(&label, NULL, NULL);
        variant_label(w, rp->best[k], &label);
        stageprof__sb_adds(sb, "{\"variant\":");
        stageprof__json_str(sb, label.buf, label.len);
        stageprof__sb_fini(&label);
        if (rp->have_best[k]) {
            stageprof__sb_init(&label, NULL, NULL);
            variant_label(w, rp->second[k], &label);
            stageprof__sb_adds(sb, ",\"runner_up\":");
            stageprof__json_str(sb, label.buf, label.len);
            stageprof__sb_fini(&label);
            const struct stats_change *c = best_change(rp, k);
            stageprof__sb_adds(sb, ",\"change\":");
            json_change(sb, c);
            stageprof__sb_addf(
                sb, ",\"real\":%s",
                isfinite(c->lo) && (c->lo > 0 || c->hi < 0) ? "true" : "false");
        }
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, "}\n");
}

/* The page: a chart per figure (change against the baseline), a table. */
static int write_html(const struct sweep *w, const struct report *rp, char *err,
                      size_t errlen)
{
    struct strbuf sb, names;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_init(&names, NULL, NULL);
    html_head(&sb, "stageprof sweep");
    stageprof__sb_addf(&sb,
                       "<p class=\"sub\">%zu variants \xc2\xb7 %ld "
                       "repetitions each, interleaved \xc2\xb7 each "
                       "against the first variant (95%% intervals)</p>\n",
                       w->nvariants, w->repeat);
    struct diff_row *rows = calloc(rp->nv + 1, sizeof *rows);
    size_t *at = calloc(rp->nv + 1, sizeof *at);
    if (rows == NULL || at == NULL) {
        free(rows);
        free(at);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t v = 0; v < rp->nv; v++) {
        at[v] = names.len;
        variant_label(w, v, &names);
    }
    at[rp->nv] = names.len;
    static const char *const titles[2] = {"Throughput", "Runs p99"};
    for (int k = 0; k < 2 && !names.oom; k++) {
        size_t n = 0;
        for (size_t v = 0; v < rp->nv; v++) {
            const struct versus *x = &rp->vs[v];
            if (x->na == 0 || x->nb == 0)
                continue;
            const struct diff *d = &x->d;
            rows[n].label = names.buf + at[v];
            rows[n].label_len = at[v + 1] - at[v];
            rows[n].change =
                k == 0 ? d->throughput.cmp[0].change : d->e[0].cmp[3].change;
            rows[n].verdict = v == 0   ? "baseline"
                              : k == 0 ? diff_verdict(d, &d->throughput, 0)
                                       : diff_verdict(d, &d->e[0], 3);
            n++;
        }
        stageprof__sb_addf(&sb, "<h2>%s against the first variant</h2>\n",
                           titles[k]);
        diff_interval_svg(&sb, k == 0 ? "throughput" : "runs-p99", rows, n);
    }
    stageprof__sb_adds(&sb, "<h2>Figures</h2>\n<table class=\"figures\">"
                            "<tr><th>variant</th><th>runs</th><th>throughput"
                            "</th><th>runs p50</th><th>runs p99</th></tr>\n");
    for (size_t v = 0; v < rp->nv && !names.oom; v++) {
        const struct versus *x = &rp->vs[v];
        stageprof__sb_adds(&sb, "<tr><td>");
        html_esc_cut(&sb, names.buf + at[v], at[v + 1] - at[v], 300);
        size_t ok = 0;
        for (long rep = 1; rep <= w->repeat; rep++) {
            const struct run *r =
                &w->runs[v * (size_t)w->repeat + (size_t)rep - 1];
            ok += r->done && r->status == 0;
        }
        stageprof__sb_addf(&sb, "</td><td>%zu/%ld</td>", ok, w->repeat);
        if (x->na == 0 || x->nb == 0) {
            stageprof__sb_adds(&sb, "<td>-</td><td>-</td><td>-</td></tr>\n");
            continue;
        }
        char b1[48], b2[48];
        stageprof__sb_addf(&sb, "<td>%.2f/s</td><td>%s</td><td>%s</td></tr>\n",
                           x->d.throughput.fig[1][0],
                           html_dur(b1, sizeof b1, x->d.e[0].fig[1][1]),
                           html_dur(b2, sizeof b2, x->d.e[0].fig[1][3]));
    }
    stageprof__sb_adds(&sb, "</table>\n");
    free(rows);
    free(at);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/sweep.html", w->dir);
    int rc = html_finish(&sb, "sweep", names.oom, path, err, errlen);
    stageprof__sb_fini(&names);
    return rc;
}

/* The command ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: stageprof sweep --param NAME=V1,V2[,...] [--param ...]\n"
          "                       [--repeat N] [-o DIR] [--resume]\n"
          "                       [--timeout-s S] [--format text|json]\n"
          "                       -- CMD [ARGS...]\n"
          "       stageprof sweep -o DIR --resume\n"
          "\n"
          "Run CMD once per combination of parameter values and\n"
          "repetition, tracing on, and compare the variants. Each run gets\n"
          "NAME=value in its environment, {NAME} in ARGS replaced by the\n"
          "value, STAGEPROF_ENABLE=1 and its own STAGEPROF_DIR under DIR.\n"
          "Repetitions are interleaved across the variants.\n"
          "\n"
          "  --param NAME=V,... a parameter and its values (up to 8 of them,\n"
          "                     64 values each)\n"
          "  --repeat N         repetitions per variant, 1 to 1000 (5)\n"
          "  -o, --output DIR   where runs, traces and the comparison go\n"
          "                     (default ./stageprof-sweep)\n"
          "  --resume           finish the sweep in DIR: runs done are kept\n"
          "  --timeout-s S      stop a run after S seconds (SIGTERM, then\n"
          "                     SIGKILL 5 s later); 0 never (default)\n"
          "  --format FMT       text (default) or json\n"
          "\n"
          "Exit status: 0 every run succeeded; 1 a run failed (the sweep\n"
          "goes on, the comparison leaves it out); 2 bad usage; 130\n"
          "interrupted (Ctrl-C: runs done are kept, --resume finishes).\n",
          f);
}

static int same_plan(const struct sweep *a, const struct sweep *b)
{
    if (a->repeat != b->repeat || a->nparams != b->nparams ||
        a->argc != b->argc)
        return 0;
    for (size_t i = 0; i < a->nparams; i++) {
        if (strcmp(a->params[i].name, b->params[i].name) != 0 ||
            a->params[i].nvalues != b->params[i].nvalues)
            return 0;
        for (size_t k = 0; k < a->params[i].nvalues; k++)
            if (strcmp(a->params[i].values[k], b->params[i].values[k]) != 0)
                return 0;
    }
    for (size_t i = 0; i < a->argc; i++)
        if (strcmp(a->argv[i], b->argv[i]) != 0)
            return 0;
    return 1;
}

static void sweep_free(struct sweep *w)
{
    for (size_t i = 0; i < w->nparams; i++) {
        for (size_t k = 0; k < w->params[i].nvalues; k++)
            free(w->params[i].values[k]);
        free(w->params[i].values);
        free(w->params[i].name);
    }
    for (size_t i = 0; i < w->argc; i++)
        free(w->argv[i]);
    free(w->argv);
    free(w->runs);
    if (w->state)
        fclose(w->state);
}

int cmd_sweep(struct cli_ctx *ctx, int argc, char **argv)
{
    enum {
        OPT_PARAM = CLI_OPT_COMMAND,
        OPT_REPEAT,
        OPT_RESUME,
        OPT_TIMEOUT,
        OPT_FORMAT
    };
    static const char shortopts[] = "+:o:" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        {"param", required_argument, NULL, OPT_PARAM},
        {"repeat", required_argument, NULL, OPT_REPEAT},
        {"output", required_argument, NULL, 'o'},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"timeout-s", required_argument, NULL, OPT_TIMEOUT},
        {"format", required_argument, NULL, OPT_FORMAT},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct sweep w;
    memset(&w, 0, sizeof w);
    w.repeat = 5;
    w.dir = "stageprof-sweep";
    int resume = 0, repeat_given = 0;
    long timeout = 0;
    enum cli_format format = CLI_FORMAT_TEXT;
    int c;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_PARAM: {
            char why[160], buf[CLI_PRINTABLE_MAX];
            if (parse_param(ctx, &w, optarg, why, sizeof why) != 0)
                cli_usage_error(ctx, "--param '%s': %s",
                                cli_printable(buf, sizeof buf, optarg), why);
            break;
        }
        case OPT_REPEAT:
            w.repeat = cli_parse_number(ctx, "repeat", optarg, 1, 1000);
            repeat_given = 1;
            break;
        case 'o':
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "-o wants a directory, not ''");
            w.dir = optarg;
            break;
        case OPT_RESUME:
            resume = 1;
            break;
        case OPT_TIMEOUT:
            timeout = cli_parse_number(ctx, "timeout-s", optarg, 0, 86400);
            break;
        case OPT_FORMAT:
            format = cli_parse_format(ctx, optarg,
                                      CLI_FORMAT_TEXT | CLI_FORMAT_JSON);
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    for (int i = optind; i < argc; i++) {
        w.argv = realloc(w.argv, (w.argc + 2) * sizeof *w.argv);
        if (w.argv == NULL)
            cli_die(ctx, "out of memory");
        w.argv[w.argc++] = xstrdup(ctx, argv[i]);
        w.argv[w.argc] = NULL;
    }

    if (resume) {
        struct sweep plan;
        memset(&plan, 0, sizeof plan);
        plan.dir = w.dir;
        state_load(ctx, &plan);
        /* A plan given again must be the one in DIR. */
        if ((w.nparams > 0 || w.argc > 0 || repeat_given) &&
            !(same_plan(&w, &plan)))
            cli_usage_error(ctx,
                            "%s/sweep.state holds another plan: give "
                            "-o %s --resume alone, or the same "
                            "--param, --repeat and command",
                            w.dir, w.dir);
        sweep_free(&w);
        w = plan;
    } else {
        if (w.nparams == 0)
            cli_usage_error(ctx, "no --param given");
        if (w.argc == 0)
            cli_usage_error(ctx, "no command given (after --)");
    }
    w.nvariants = 1;
    for (size_t i = 0; i < w.nparams; i++) {
        w.nvariants *= w.params[i].nvalues;
        if (w.nvariants > MAX_VARIANTS)
            cli_usage_error(ctx, "more than %d variants", MAX_VARIANTS);
    }
    if (!runnable(w.argv[0])) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "%s: no such command (or not executable)",
                        cli_printable(buf, sizeof buf, w.argv[0]));
    }
    size_t total = w.nvariants * (size_t)w.repeat;
    if (!resume) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", w.dir);
        if (make_dirs(dir) != 0)
            cli_die(ctx, "%s: cannot create: %s", w.dir, strerror(errno));
        state_create(ctx, &w);
        w.runs = calloc(total, sizeof *w.runs);
    } else if (w.runs == NULL) {
        w.runs = calloc(total, sizeof *w.runs);
    }
    if (w.runs == NULL)
        cli_die(ctx, "out of memory");

    /* Ctrl-C: the run going on ends (the child gets it too), then stop. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    size_t done = 0;
    for (size_t i = 0; i < total; i++)
        done += w.runs[i].done;
    size_t todo = total - done, ran = 0;
    double spent = 0, started = now_s();
    int failed = 0;
    for (long rep = 1; rep <= w.repeat && !interrupted; rep++) {
        for (size_t j = 0; j < w.nvariants && !interrupted; j++) {
            /* Each round starts one variant later. */
            size_t v = (j + (size_t)(rep - 1)) % w.nvariants;
            struct run *r = &w.runs[v * (size_t)w.repeat + (size_t)rep - 1];
            if (r->done)
                continue;
            struct strbuf label;
            stageprof__sb_init(&label, NULL, NULL);
            variant_label(&w, v, &label);
            double t0 = now_s();
            int status = run_one(ctx, &w, v, rep, timeout);
            double secs = now_s() - t0;
            if (interrupted && status != 0) {
                stageprof__sb_fini(&label);
                break; /* the interrupted run is not kept */
            }
            r->done = 1;
            r->status = status;
            r->seconds = secs;
            state_run(ctx, &w, v, rep, r);
            ran++;
            spent += secs;
            if (status != 0)
                failed = 1;
            if (!ctx->quiet) {
                double left = spent / (double)ran * (double)(todo - ran);
                fprintf(stderr,
                        "stageprof sweep: [%zu/%zu] %s rep %ld/%ld: %s in "
                        "%.1f s (elapsed %.0f s, about %.0f s left)\n",
                        done + ran, total, label.buf, rep, w.repeat,
                        status == 0 ? "done" : "FAILED", secs,
                        now_s() - started, left);
                if (status != 0)
                    fprintf(stderr,
                            "stageprof sweep: exit status %d; see its "
                            "stderr.txt\n",
                            status);
            }
            stageprof__sb_fini(&label);
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (interrupted) {
        size_t now_done = 0;
        for (size_t i = 0; i < total; i++)
            now_done += w.runs[i].done;
        fprintf(stderr,
                "stageprof sweep: interrupted: %zu of %zu runs done, kept "
                "in %s; resume with: stageprof sweep -o %s --resume\n",
                now_done, total, w.dir, w.dir);
        sweep_free(&w);
        return 130;
    }

    struct report rp;
    memset(&rp, 0, sizeof rp);
    compare(ctx, &w, &rp);
    struct strbuf js;
    stageprof__sb_init(&js, NULL, NULL);
    summary_json(&w, &rp, &js);
    char path[PATH_MAX], err[600];
    snprintf(path, sizeof path, "%s/summary.json", w.dir);
    if (js.oom || html_write_atomic(path, js.buf, js.len, err, sizeof err))
        cli_die(ctx, "%s", js.oom ? "out of memory" : err);
    if (write_html(&w, &rp, err, sizeof err) != 0)
        cli_die(ctx, "%s", err);
    if (format == CLI_FORMAT_JSON)
        fwrite(js.buf, 1, js.len, stdout);
    else
        print_text(&w, &rp);
    stageprof__sb_fini(&js);
    for (size_t v = 0; v < rp.nv; v++)
        diff_free(&rp.vs[v].d);
    for (int k = 0; k < 2; k++)
        if (rp.have_best[k])
            diff_free(&rp.top[k].d);
    free(rp.vs);
    sweep_free(&w);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
