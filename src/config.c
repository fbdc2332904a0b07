/*
 * config.c - resolve the configuration: API field, else environment
 * variable, else default.
 *
 * Every bad value is reported once through the log callback (and kept in
 * conf.warnings for the trace metadata) and replaced by its default; nothing
 * here can fail except allocation. Parsers are strict: the whole string
 * must be a value, with no sign on sizes and no trailing junk.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"

int stageprof__parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return STAGEPROF_EINVAL;
}

/* Digits with an optional K, M, G or T suffix (powers of 1024, "KiB" ok). */
int stageprof__parse_size(const char *s, long long *out)
{
    if (!isdigit((unsigned char)s[0]))
        return STAGEPROF_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return STAGEPROF_ERANGE;
    int shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    default:
        break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return STAGEPROF_EINVAL;
    if (v > (unsigned long long)(LLONG_MAX >> shift))
        return STAGEPROF_ERANGE;
    *out = (long long)(v << shift);
    return 0;
}

/* Plain decimal digits. */
int stageprof__parse_count(const char *s, long long *out)
{
    if (!isdigit((unsigned char)s[0]))
        return STAGEPROF_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return STAGEPROF_EINVAL;
    if (errno == ERANGE || v > (unsigned long long)LLONG_MAX)
        return STAGEPROF_ERANGE;
    *out = (long long)v;
    return 0;
}

/*
 * A signal a process may give the profiler: USR1, USR2 or HUP (with or
 * without "SIG"), a real-time signal by number, or 0 / "off" for none.
 */
int stageprof__parse_signal(const char *s, int *out)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}};
    if (strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0 || s[0] == '\0')
        return *out = 0, 0;
    const char *n = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(n, names[i].name) == 0)
            return *out = names[i].sig, 0;
    long long v;
    if (stageprof__parse_count(s, &v) == 0 &&
        (v == SIGUSR1 || v == SIGUSR2 || v == SIGHUP ||
         (v >= SIGRTMIN && v <= SIGRTMAX)))
        return *out = (int)v, 0;
    return STAGEPROF_EINVAL;
}

/*
 * Histogram bounds: a comma list of seconds, each a finite number above 0
 * and above the one before ("0.001,0.01,0.1,1"), at most @max of them.
 */
int stageprof__parse_buckets(const char *s, double *out, int max, int *n)
{
    int k = 0;
    const char *p = s;
    for (;;) {
        if (k == max)
            return STAGEPROF_ERANGE;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return STAGEPROF_EINVAL;
        errno = 0;
        char *end;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !(v > 0.0) || v > 1e9 ||
            (k > 0 && !(v > out[k - 1])))
            return STAGEPROF_EINVAL;
        out[k++] = v;
        if (*end == '\0')
            break;
        if (*end != ',')
            return STAGEPROF_EINVAL;
        p = end + 1;
    }
    *n = k;
    return 0;
}

static int name_char_ok(unsigned char ch)
{
    return isalnum(ch) || ch == '_' || ch == '.' || ch == ':' || ch == '/' ||
           ch == '-';
}

static void free_rules(struct conf *c)
{
    for (int i = 0; i < c->nrules; i++)
        stageprof__free(c->rules[i].name);
    c->nrules = 0;
    c->has_include = 0;
}

/*
 * "*", "name" and "-name" items separated by commas, blanks around items
 * ignored. Returns 0, STAGEPROF_EINVAL (syntax) or STAGEPROF_ENOMEM; on
 * error no rules are left.
 */
int stageprof__parse_categories(const char *s, struct conf *c)
{
    free_rules(c);
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        int exclude = 0;
        if (*p == '-') {
            exclude = 1;
            p++;
        }
        const char *start = p;
        size_t len = 0;
        if (*p == '-') /* a name never starts with '-' */
            goto bad;
        if (*p == '*' && !exclude) {
            p++;
        } else {
            while (name_char_ok((unsigned char)*p))
                p++;
            len = (size_t)(p - start);
            if (len == 0)
                goto bad;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ',' && *p != '\0')
            goto bad;
        if (c->nrules == STAGEPROF_MAX_CATEGORY_RULES)
            goto bad;
        struct cat_rule *r = &c->rules[c->nrules];
        r->exclude = exclude;
        r->name = NULL;
        if (len > 0) {
            r->name = stageprof__malloc(len + 1);
            if (r->name == NULL) {
                free_rules(c);
                return STAGEPROF_ENOMEM;
            }
            memcpy(r->name, start, len);
            r->name[len] = '\0';
            if (!exclude)
                c->has_include = 1;
        }
        c->nrules++;
        if (*p == '\0')
            return 0;
        p++;
    }
bad:
    free_rules(c);
    return STAGEPROF_EINVAL;
}

int stageprof__config_category_ok(const struct conf *c, const char *category)
{
    if (category == NULL)
        category = "default";
    int ok = !c->has_include;
    for (int i = 0; i < c->nrules; i++) {
        const struct cat_rule *r = &c->rules[i];
        if (r->name == NULL) {
            ok = 1;
            continue;
        }
        if (strcmp(r->name, category) != 0)
            continue;
        if (r->exclude)
            return 0;
        ok = 1;
    }
    return ok;
}

/* Remember a bad setting for the trace and tell the log callback once. */
static void warn(struct conf *c, const char *fmt, const char *name,
                 const char *value)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, name, value);
    if (c->nwarnings < (int)(sizeof c->warnings / sizeof c->warnings[0])) {
        char *copy = stageprof__strdup(msg);
        if (copy != NULL)
            c->warnings[c->nwarnings++] = copy;
    }
    stageprof__log_conf(c, STAGEPROF_LOG_WARN, "%s", msg);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v;
}

int stageprof__config_env_enabled(void)
{
    int on = 0;
    const char *v = env("STAGEPROF_ENABLE");
    if (v == NULL)
        v = env("ENABLE_WORKFLOWS_PROFILING");
    if (v == NULL || stageprof__parse_bool(v, &on) != 0)
        return 0;
    return on;
}

/* Pick the API string if set, else the environment's (by name or alias). */
static const char *pick_str(const char *api, const char *name,
                            const char *alias, const char **src,
                            const char **env_name)
{
    *env_name = name;
    if (api != NULL) {
        *src = "api";
        return api;
    }
    const char *v = env(name);
    if (v == NULL && alias != NULL && (v = env(alias)) != NULL)
        *env_name = alias;
    *src = v ? "env" : "default";
    return v;
}

static int dup_into(char **dst, const char *s)
{
    *dst = stageprof__strdup(s);
    return *dst ? 0 : STAGEPROF_ENOMEM;
}

/*
 * A whole-number setting: the API value when not STAGEPROF_UNSET, else the
 * environment (@name, then @alias), else @def. Malformed or outside
 * [@min, @max]: warning, @def. Sizes take K/M/G/T suffixes.
 */
static long long resolve_num(struct conf *out, long long api, const char *name,
                             const char *alias, int size, long long min,
                             long long max, long long def, const char *expect)
{
    char text[32];
    const char *v = NULL, *ename = name;
    long long n = -1;
    if (api != STAGEPROF_UNSET) {
        snprintf(text, sizeof text, "%lld", api);
        v = text;
        n = api;
    } else {
        v = env(name);
        if (v == NULL && alias != NULL && (v = env(alias)) != NULL)
            ename = alias;
        if (v == NULL)
            return def;
        if ((size ? stageprof__parse_size(v, &n)
                  : stageprof__parse_count(v, &n)) != 0)
            n = -1;
    }
    if (n >= min && n <= max)
        return n;
    char fmt[256];
    snprintf(fmt, sizeof fmt, "invalid %%s value \"%%s\" (%s): using %lld",
             expect, def);
    warn(out, fmt, ename, v);
    return def;
}

/* A 0/1 setting, as resolve_num with the boolean words. */
static int resolve_flag(struct conf *out, int api, const char *name, int def)
{
    if (api != STAGEPROF_UNSET) {
        if (api == 0 || api == 1)
            return api;
        warn(out, "invalid %s value \"%s\": using the default", name,
             "not 0 or 1");
        return def;
    }
    const char *v = env(name);
    int on;
    if (v == NULL)
        return def;
    if (stageprof__parse_bool(v, &on) == 0)
        return on;
    warn(out,
         "invalid %s value \"%s\" (1/0, true/false, yes/no, on/off): "
         "using the default",
         name, v);
    return def;
}

static void resolve_signal(const stageprof_config_t *api, struct conf *out)
{
    int sig = 0;
    if (api && api->snapshot_signal != STAGEPROF_UNSET) {
        char text[16];
        snprintf(text, sizeof text, "%d", api->snapshot_signal);
        if (stageprof__parse_signal(text, &sig) != 0) {
            warn(out, "invalid %s value \"%s\": no snapshot signal",
                 "snapshot_signal", text);
            sig = 0;
        }
    } else {
        const char *v = env("STAGEPROF_SNAPSHOT_SIGNAL");
        if (v != NULL && stageprof__parse_signal(v, &sig) != 0) {
            warn(out,
                 "invalid %s value \"%s\" (USR1, USR2, HUP, a real-time "
                 "signal number, or off): no snapshot signal",
                 "STAGEPROF_SNAPSHOT_SIGNAL", v);
            sig = 0;
        }
    }
    out->snapshot_signal = sig;
}

/* The settings of the run ring, sampling, files, crash and fork handling. */
static void resolve_always_on(const stageprof_config_t *a, struct conf *out)
{
    out->buffer_runs =
        resolve_num(out, a ? a->buffer_runs : STAGEPROF_UNSET,
                    "STAGEPROF_BUFFER_RUNS", "WORKFLOWS_PROFILER_BUFFER_SIZE",
                    0, 0, 1000000, 64, "a count of runs from 0 to 1000000");
    out->sample_runs = resolve_num(
        out, a ? a->sample_runs : STAGEPROF_UNSET, "STAGEPROF_SAMPLE_RUNS",
        NULL, 0, 1, 1000000000, 1, "1 to record every run, N for 1 in N");
    out->max_files = resolve_num(out, a ? a->max_files : STAGEPROF_UNSET,
                                 "STAGEPROF_MAX_FILES", NULL, 0, 0, 1000000000,
                                 0, "a count, 0 for no limit");
    out->max_dir_bytes = resolve_num(
        out, a ? a->max_dir_bytes : STAGEPROF_UNSET, "STAGEPROF_MAX_DIR_BYTES",
        NULL, 1, 0, LLONG_MAX, 0, "a size such as 500M, 0 for no limit");
    out->gzip =
        resolve_flag(out, a ? a->gzip : STAGEPROF_UNSET, "STAGEPROF_GZIP", 0);
    out->crash_dump = resolve_flag(out, a ? a->crash_dump : STAGEPROF_UNSET,
                                   "STAGEPROF_CRASH_DUMP", 0);
    out->follow_fork = resolve_flag(out, a ? a->follow_fork : STAGEPROF_UNSET,
                                    "STAGEPROF_FOLLOW_FORK", 1);
    resolve_signal(a, out);
}

static void resolve_enable(const stageprof_config_t *api, struct conf *out)
{
    const char *ename;
    out->enable = 0;
    out->src_enable = "default";
    if (api && api->enable != STAGEPROF_UNSET) {
        if (api->enable == 0 || api->enable == 1) {
            out->enable = api->enable;
            out->src_enable = "api";
            return;
        }
        warn(out, "invalid %s value \"%s\": tracing stays off", "enable",
             "not 0 or 1");
        return;
    }
    const char *v =
        pick_str(NULL, "STAGEPROF_ENABLE", "ENABLE_WORKFLOWS_PROFILING",
                 &out->src_enable, &ename);
    if (v != NULL && stageprof__parse_bool(v, &out->enable) != 0) {
        warn(out, "invalid %s value \"%s\": tracing stays off", ename, v);
        out->enable = 0;
        out->src_enable = "default";
    }
}

static void resolve_buffer(const stageprof_config_t *api, struct conf *out)
{
    out->buffer_bytes = STAGEPROF_DEFAULT_BUFFER_BYTES;
    out->src_buffer_bytes = "default";
    long long v = -1;
    char text[32];
    const char *sv = NULL;
    if (api && api->buffer_bytes != STAGEPROF_UNSET) {
        v = api->buffer_bytes;
        snprintf(text, sizeof text, "%lld", v);
        sv = text;
        out->src_buffer_bytes = "api";
    } else if ((sv = env("STAGEPROF_BUFFER_BYTES")) != NULL) {
        out->src_buffer_bytes = "env";
        if (stageprof__parse_size(sv, &v) != 0)
            v = -1;
    } else {
        return;
    }
    if (v < STAGEPROF_MIN_BUFFER_BYTES || v > (1ll << 40)) {
        warn(out,
             "invalid %s value \"%s\" (a size from 16K to 1T, e.g. 64M): "
             "using 64M",
             "STAGEPROF_BUFFER_BYTES", sv);
        out->src_buffer_bytes = "default";
        return;
    }
    out->buffer_bytes = v;
}

static int resolve_categories(const stageprof_config_t *api, struct conf *out)
{
    const char *ename;
    const char *v =
        pick_str(api ? api->categories : NULL, "STAGEPROF_CATEGORIES", NULL,
                 &out->src_categories, &ename);
    if (v != NULL) {
        int rc = stageprof__parse_categories(v, out);
        if (rc == STAGEPROF_ENOMEM)
            return rc;
        if (rc == 0)
            return dup_into(&out->categories, v);
        warn(out,
             "invalid %s value \"%s\" (comma list of *, name, -name): "
             "recording all categories",
             ename, v);
        out->src_categories = "default";
    }
    int rc = stageprof__parse_categories("*", out);
    return rc ? rc : dup_into(&out->categories, "*");
}

static void resolve_clock(const stageprof_config_t *api, struct conf *out)
{
    static const char *const names[] = {"auto", "tsc", "monotonic"};
    out->clock = STAGEPROF_CLOCK_AUTO;
    out->src_clock = "default";
    if (api && api->clock != STAGEPROF_UNSET) {
        if (api->clock >= 0 && api->clock <= 2) {
            out->clock = api->clock;
            out->src_clock = "api";
        } else {
            warn(out, "invalid %s value \"%s\": using auto", "clock",
                 "out of range");
        }
        return;
    }
    const char *v = env("STAGEPROF_CLOCK");
    if (v == NULL)
        return;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            out->clock = i;
            out->src_clock = "env";
            return;
        }
    }
    warn(out, "invalid %s value \"%s\" (auto, tsc or monotonic): using auto",
         "STAGEPROF_CLOCK", v);
}

static int resolve_dir(const stageprof_config_t *api, struct conf *out)
{
    const char *ename;
    const char *v = pick_str(api ? api->dir : NULL, "STAGEPROF_DIR", NULL,
                             &out->src_dir, &ename);
    if (v != NULL) {
        struct stat st;
        if (v[0] == '\0') {
            warn(
                out,
                "invalid %s value \"%s\" (empty): using " STAGEPROF_DEFAULT_DIR,
                ename, v);
        } else if (strlen(v) > 3000) {
            warn(out,
                 "invalid %s value \"%.40s...\" (too long): "
                 "using " STAGEPROF_DEFAULT_DIR,
                 ename, v);
        } else if (stat(v, &st) == 0 && !S_ISDIR(st.st_mode)) {
            warn(out,
                 "invalid %s value \"%s\" (exists and is not a "
                 "directory): using " STAGEPROF_DEFAULT_DIR,
                 ename, v);
        } else {
            return dup_into(&out->dir, v);
        }
        out->src_dir = "default";
    }
    return dup_into(&out->dir, STAGEPROF_DEFAULT_DIR);
}

/*
 * Tail keeping: the thresholds, the window and the share of the budget
 * (after the budget and the ring). Off unless a threshold or K is set.
 */
static void resolve_tail(const stageprof_config_t *a, struct conf *out)
{
    out->keep_slower_than_ms =
        resolve_num(out, a ? a->keep_slower_than_ms : STAGEPROF_UNSET,
                    "STAGEPROF_KEEP_SLOWER_THAN_MS", NULL, 0, 0, 86400000, 0,
                    "milliseconds from 0 (off) to 86400000");
    out->keep_slowest = resolve_num(out, a ? a->keep_slowest : STAGEPROF_UNSET,
                                    "STAGEPROF_KEEP_SLOWEST", NULL, 0, 0,
                                    STAGEPROF_MAX_KEEP_SLOWEST, 0,
                                    "a count from 0 (off) to 64");
    out->keep_window_s = resolve_num(
        out, a ? a->keep_window_s : STAGEPROF_UNSET, "STAGEPROF_KEEP_WINDOW_S",
        NULL, 0, 1, 86400, 60, "seconds from 1 to 86400");
    long long half = out->buffer_bytes / 2;
    out->keep_bytes = resolve_num(
        out, a ? a->keep_bytes : STAGEPROF_UNSET, "STAGEPROF_KEEP_BYTES", NULL,
        1, 4096, half, out->buffer_bytes / 4,
        "a size from 4K to half of STAGEPROF_BUFFER_BYTES");
    /* Only a tracing session keeps runs: elsewhere the share would
     * only shrink the buffers (metrics-mode capture windows use them). */
    int on =
        out->enable && (out->keep_slower_than_ms > 0 || out->keep_slowest > 0);
    if (on && out->buffer_runs == 0) {
        warn(out, "%s%s",
             "STAGEPROF_KEEP_SLOWER_THAN_MS and "
             "STAGEPROF_KEEP_SLOWEST need the run ring",
             " (STAGEPROF_BUFFER_RUNS=0 keeps every run already): ignored");
        on = 0;
    }
    if (!on) {
        out->keep_slower_than_ms = out->keep_slowest = 0;
        out->keep_bytes = 0;
    }
}

/* Default bounds: 100 us to 10 s, about three per decade. */
static const double default_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

/* The endpoint, the sampler and the histograms. */
static int resolve_live(const stageprof_config_t *a, struct conf *out)
{
    const char *src, *ename;
    const char *v =
        pick_str(a ? a->http : NULL, "STAGEPROF_HTTP", NULL, &src, &ename);
    if (v != NULL && v[0] != '\0' && dup_into(&out->http, v) != 0)
        return STAGEPROF_ENOMEM;
    v = pick_str(a ? a->http_token : NULL, "STAGEPROF_HTTP_TOKEN", NULL, &src,
                 &ename);
    if (v != NULL && v[0] != '\0' && dup_into(&out->http_token, v) != 0)
        return STAGEPROF_ENOMEM;
    out->http_max_connections =
        resolve_num(out, a ? a->http_max_connections : STAGEPROF_UNSET,
                    "STAGEPROF_HTTP_MAX_CONNECTIONS", NULL, 0, 1, 10000, 256,
                    "a count of connections from 1 to 10000");
    out->http_idle_timeout_s =
        resolve_num(out, a ? a->http_idle_timeout_s : STAGEPROF_UNSET,
                    "STAGEPROF_HTTP_IDLE_TIMEOUT_S", NULL, 0, 1, 3600, 10,
                    "seconds from 1 to 3600");
    out->sample_hz = resolve_num(out, a ? a->sample_hz : STAGEPROF_UNSET,
                                 "STAGEPROF_SAMPLE_HZ", NULL, 0, 0, 1000, 10,
                                 "samples a second from 0 to 1000");
    out->max_stages = resolve_num(out, a ? a->max_stages : STAGEPROF_UNSET,
                                  "STAGEPROF_MAX_STAGES", NULL, 0, 1, 65536,
                                  256, "a count from 1 to 65536");
    int nb = (int)(sizeof default_buckets / sizeof default_buckets[0]);
    memcpy(out->buckets, default_buckets, sizeof default_buckets);
    out->nbuckets = nb;
    v = pick_str(a ? a->histogram_buckets : NULL, "STAGEPROF_HISTOGRAM_BUCKETS",
                 NULL, &src, &ename);
    if (v != NULL &&
        stageprof__parse_buckets(v, out->buckets, STAGEPROF_MAX_BUCKETS,
                                 &out->nbuckets) != 0) {
        warn(out,
             "invalid %s value \"%s\" (comma list of at most 64 increasing "
             "seconds above 0): using 0.0001,...,10",
             ename, v);
        memcpy(out->buckets, default_buckets, sizeof default_buckets);
        out->nbuckets = nb;
    }
    return 0;
}

int stageprof__config_resolve(const stageprof_config_t *api, struct conf *out)
{
    const char *src, *ename;
    memset(out, 0, sizeof *out);
    if (api) {
        out->log_cb = api->log_cb;
        out->log_data = api->log_data;
    }
    const char *lf = pick_str(api ? api->log_file : NULL, "STAGEPROF_LOG_FILE",
                              NULL, &src, &ename);
    if (lf != NULL && lf[0] != '\0' && dup_into(&out->log_file, lf) != 0)
        goto oom;
    /* Log settings come first, so problems with the others reach the log. */
    resolve_enable(api, out);
    resolve_buffer(api, out);
    resolve_clock(api, out);
    resolve_always_on(api, out);
    resolve_tail(api, out);
    if (resolve_categories(api, out) != 0 || resolve_dir(api, out) != 0 ||
        resolve_live(api, out) != 0)
        goto oom;
    const char *pn = pick_str(api ? api->process_name : NULL,
                              "STAGEPROF_PROCESS_NAME", NULL, &src, &ename);
    if (pn != NULL && pn[0] != '\0' && dup_into(&out->process_name, pn) != 0)
        goto oom;
    return 0;
oom:
    stageprof__config_fini(out);
    return STAGEPROF_ENOMEM;
}

void stageprof__config_fini(struct conf *c)
{
    free_rules(c);
    stageprof__free(c->dir);
    stageprof__free(c->categories);
    stageprof__free(c->log_file);
    stageprof__free(c->process_name);
    stageprof__free(c->http);
    stageprof__free(c->http_token);
    for (int i = 0; i < c->nwarnings; i++)
        stageprof__free(c->warnings[i]);
    memset(c, 0, sizeof *c);
}
