/*
 * cmd_record.c - `stageprof record`: run a program with tracing on, then
 * print the report of the traces it wrote.
 *
 *   stageprof record [-o DIR] [report options] [--] COMMAND [ARG...]
 *
 * Order of work, each step before anything the next one could spoil:
 *
 *   1. parse record's options, stopping at the first non-option ("+"), so
 *      COMMAND's own options stay COMMAND's;
 *   2. have the report options checked by cmd_report itself, in a child
 *      process on an empty input: a usage error shows before COMMAND runs,
 *      worded exactly as `stageprof report` words it;
 *   3. make the directory: a new one named like the trace files, or DIR,
 *      whose entries are noted so that only files new after the run are
 *      reported;
 *   4. spawn COMMAND with STAGEPROF_ENABLE=1 and STAGEPROF_DIR=<DIR as an
 *      absolute path>, ignoring SIGINT and SIGQUIT while it runs (as
 *      `time` does: the terminal's Ctrl-C goes to COMMAND, and whatever it
 *      wrote is still reported);
 *   5. call cmd_report in this process on the new trace files, or explain
 *      on stderr why there are none.
 *
 * Exit status: COMMAND's own (128 + N when signal N killed it), else the
 * report's; 1 when a successful COMMAND wrote no trace; 126 and 127 when
 * COMMAND cannot be run or found (as shells and env(1) say); 2 bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* An argv under construction, NULL-terminated, owning its strings. */
struct args {
    char **v;
    size_t n, cap;
};

/* The names in a directory before the run, with their inode numbers. */
struct entry {
    char *name;
    ino_t ino;
};

struct listing {
    struct entry *v;
    size_t n, cap;
};

static void usage(FILE *f)
{
    fputs("usage: stageprof record [-o DIR] [report options] [--] COMMAND "
          "[ARG...]\n"
          "\n"
          "Run COMMAND with tracing on (STAGEPROF_ENABLE=1 and\n"
          "STAGEPROF_DIR=DIR in its environment), wait for it, then print\n"
          "'stageprof report' of the traces it wrote. COMMAND is looked up\n"
          "in PATH. record's options end at the first argument that is not\n"
          "one of them, or at --: COMMAND's own options are left to it.\n"
          "\n"
          "Options:\n"
          "  -o, --output=DIR  write the traces into DIR (made when missing)\n"
          "                    and report only the files that appear there\n"
          "                    during the run; default: a new directory\n"
          "                    ./stageprof_record_<YYYY_MM_DD_HH_MM_SS>\n"
          "  --format=FORMAT, --top=N, --from=TIME, --to=TIME,\n"
          "  --category=LIST, --thread=TEXT, --name=TEXT, --regex,\n"
          "  --exact-limit=N, --html=FILE\n"
          "                    as for 'stageprof report'\n"
          "  -h, --help        show this help\n"
          "\n"
          "The global options (-v, -q, --color) are accepted as well.\n"
          "SIGINT and SIGQUIT are ignored while COMMAND runs: Ctrl-C reaches\n"
          "COMMAND alone, and what it wrote is still reported.\n"
          "Exit status: COMMAND's own, 128+N when signal N killed it; when\n"
          "COMMAND succeeded, 1 if it wrote no trace or the report failed;\n"
          "126 COMMAND cannot be run, 127 COMMAND not found, 2 bad usage.\n",
          f);
}

/* Memory ------------------------------------------------------------------ */

static void *xrealloc(const struct cli_ctx *ctx, void *p, size_t n, size_t size)
{
    if (n != 0 && size > (size_t)-1 / n)
        cli_die(ctx, "out of memory");
    void *q = realloc(p, n * size);
    if (q == NULL && n != 0)
        cli_die(ctx, "out of memory");
    return q;
}

/* A new string made by snprintf. */
static char *xprintf(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *xprintf(const struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        cli_die(ctx, "out of memory");
    char *s = xrealloc(ctx, NULL, (size_t)n + 1, 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Append @s (taken) to @a. */
static void args_take(const struct cli_ctx *ctx, struct args *a, char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = xrealloc(ctx, a->v, a->cap, sizeof *a->v);
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void args_add(const struct cli_ctx *ctx, struct args *a, const char *s)
{
    args_take(ctx, a, xprintf(ctx, "%s", s));
}

static void args_free(struct args *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* Checking the report options ---------------------------------------------- */

/*
 * Run cmd_report with @report_opts on an empty standard input, in a child
 * process with stdout and stderr caught. Its options are valid when it
 * fails for want of a trace (status 1); a usage error (status 2) is shown
 * and is record's own.
 */
static void check_report_options(struct cli_ctx *ctx,
                                 const struct args *report_opts)
{
    if (report_opts->n == 0)
        return;
    struct args a = {0};
    args_add(ctx, &a, "report");
    for (size_t i = 0; i < report_opts->n; i++)
        args_add(ctx, &a, report_opts->v[i]);
    args_add(ctx, &a, "--");
    args_add(ctx, &a, "-");

    int fds[2];
    if (pipe(fds) != 0)
        cli_die(ctx, "cannot create a pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        cli_die(ctx, "cannot fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
            dup2(fds[1], 2) < 0)
            _exit(CLI_EXIT_FAIL);
        close(null);
        close(fds[0]);
        close(fds[1]);
        cli_getopt_reset();
        int rc = cmd_report(ctx, (int)a.n, a.v);
        fflush(NULL);
        _exit(rc);
    }
    close(fds[1]);

    /* The messages of a usage error: a few lines; the rest is dropped. */
    char msg[8192];
    size_t len = 0;
    for (;;) {
        char buf[4096];
        ssize_t k = read(fds[0], buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        size_t take =
            (size_t)k < sizeof msg - len ? (size_t)k : sizeof msg - len;
        memcpy(msg + len, buf, take);
        len += take;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            cli_die(ctx, "cannot wait for a process: %s", strerror(errno));
    args_free(&a);
    if (WIFEXITED(status) && WEXITSTATUS(status) == CLI_EXIT_USAGE) {
        fwrite(msg, 1, len, stderr);
        exit(CLI_EXIT_USAGE);
    }
}

/* The trace directory ---------------------------------------------------- */

/* mkdir -p @path; 0 or an errno value. */
static int make_dirs(const struct cli_ctx *ctx, const char *path)
{
    char *p = xprintf(ctx, "%s", path);
    int err = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            err = errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return err;
}

/*
 * A new directory in the working directory, named as trace files are:
 * stageprof_record_<YYYY_MM_DD_HH_MM_SS> in local time, with _1, _2, ...
 * when the name is taken. mkdir() makes it ours: two records started in
 * the same second never share one.
 */
static char *make_fresh_dir(const struct cli_ctx *ctx)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    if (localtime_r(&now, &tm) == NULL ||
        strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm) == 0)
        cli_die(ctx, "cannot read the time");
    for (unsigned i = 0; i < 10000; i++) {
        char *name = i == 0 ? xprintf(ctx, "stageprof_record_%s", stamp)
                            : xprintf(ctx, "stageprof_record_%s_%u", stamp, i);
        if (mkdir(name, 0777) == 0)
            return name;
        int err = errno;
        if (err != EEXIST)
            cli_die(ctx, "cannot create the directory %s: %s", name,
                    strerror(err));
        free(name);
    }
    cli_die(ctx, "cannot find a free name for the trace directory");
}

/* A trace file's name, as `stageprof report` takes them from a directory. */
static int is_trace_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".json") == 0) ||
           (n > 8 && strcmp(name + n - 8, ".json.gz") == 0);
}

/* Entries by name. */
static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name,
                  ((const struct entry *)b)->name);
}

/* The entries of @dir, sorted by name. */
static void list_dir(const struct cli_ctx *ctx, const char *dir,
                     struct listing *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (d == NULL)
        cli_die(ctx, "cannot read the directory %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 16;
            out->v = xrealloc(ctx, out->v, out->cap, sizeof *out->v);
        }
        out->v[out->n].name = xprintf(ctx, "%s", de->d_name);
        out->v[out->n].ino = de->d_ino;
        out->n++;
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, entry_cmp);
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/*
 * The trace files of @dir that are not in @before (by name and inode: a
 * file replaced under an old name is new), as paths under @dir, in name
 * order: the order the library writes them in.
 */
static void new_traces(const struct cli_ctx *ctx, const char *dir,
                       const struct listing *before, struct args *paths)
{
    struct listing now;
    list_dir(ctx, dir, &now);
    for (size_t i = 0; i < now.n; i++) {
        const struct entry *e = &now.v[i];
        if (!is_trace_name(e->name))
            continue;
        const struct entry *old =
            before->n
                ? bsearch(e, before->v, before->n, sizeof *before->v, entry_cmp)
                : NULL;
        if (old != NULL && old->ino == e->ino)
            continue;
        char *path = xprintf(ctx, "%s%s%s", dir,
                             dir[strlen(dir) - 1] == '/' ? "" : "/", e->name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        args_take(ctx, paths, path);
    }
    listing_free(&now);
}

/* Running the program ------------------------------------------------------ */

/*
 * The caller's environment with STAGEPROF_ENABLE=1 and STAGEPROF_DIR=@dir
 * in place of any values it had. The aliases (ENABLE_WORKFLOWS_PROFILING)
 * stay: the library reads them only when STAGEPROF_ENABLE is unset.
 */
static void child_env(const struct cli_ctx *ctx, const char *dir,
                      struct args *env)
{
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, "STAGEPROF_ENABLE=", 17) == 0 ||
            strncmp(*e, "STAGEPROF_DIR=", 14) == 0)
            continue;
        args_add(ctx, env, *e);
    }
    args_add(ctx, env, "STAGEPROF_ENABLE=1");
    args_take(ctx, env, xprintf(ctx, "STAGEPROF_DIR=%s", dir));
}

static const struct {
    int sig;
    const char *name;
} signal_names[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},       {SIGQUIT, "SIGQUIT"},
    {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},     {SIGABRT, "SIGABRT"},
    {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},       {SIGKILL, "SIGKILL"},
    {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},     {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},     {SIGTERM, "SIGTERM"},
    {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"},
    {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},     {SIGTTOU, "SIGTTOU"},
    {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"},     {SIGXFSZ, "SIGXFSZ"},
    {SIGPROF, "SIGPROF"}, {SIGVTALRM, "SIGVTALRM"}, {SIGSYS, "SIGSYS"},
};

/* "SIGTERM (Terminated)", "SIGRTMIN+2 (...)" or "signal 70". */
static const char *signal_text(char *buf, size_t size, int sig)
{
    const char *desc = strsignal(sig);
    for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
        if (signal_names[i].sig == sig) {
            snprintf(buf, size, "%s (%s)", signal_names[i].name,
                     desc ? desc : "?");
            return buf;
        }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, size, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, size, "signal %d", sig);
    return buf;
}

/*
 * Spawn @argv with @env; the pid, or -1 with the exit status of a
 * command that cannot be run in *@status.
 */
static pid_t spawn(const struct cli_ctx *ctx, char **argv, char **env,
                   const sigset_t *defaults, int *status)
{
    posix_spawnattr_t attr;
    if (posix_spawnattr_init(&attr) != 0 ||
        posix_spawnattr_setsigdefault(&attr, defaults) != 0 ||
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF) != 0)
        cli_die(ctx, "cannot prepare to run a program");
    fflush(stdout);
    fflush(stderr);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    if (err == 0)
        return pid;

    char buf[CLI_PRINTABLE_MAX];
    const char *cmd = cli_printable(buf, sizeof buf, argv[0]);
    if (err == ENOENT && strchr(argv[0], '/') == NULL) {
        fprintf(stderr, "stageprof record: %s: command not found\n", cmd);
        *status = 127;
    } else {
        /* 127 for a missing file, 126 for one that cannot be run: env(1). */
        fprintf(stderr, "stageprof record: %s: %s\n", cmd, strerror(err));
        *status = err == ENOENT ? 127 : 126;
    }
    return -1;
}

/* Why a program may have written no trace, on stderr. */
static void explain_no_trace(const char *cmd, const char *dir, int fresh,
                             int sig)
{
    char buf[CLI_PRINTABLE_MAX], dbuf[CLI_PRINTABLE_MAX], sbuf[64];
    fprintf(stderr,
            "stageprof record: %s wrote no trace%s%s. Possible "
            "causes:\n",
            cli_printable(buf, sizeof buf, cmd), fresh ? "" : " into ",
            fresh ? "" : cli_printable(dbuf, sizeof dbuf, dir));
    if (sig != 0)
        fprintf(stderr,
                "  - it was killed by %s before writing one;\n"
                "    a trace is written at normal exit, by stageprof_stop() "
                "or\n"
                "    stageprof_flush(), and with STAGEPROF_CRASH_DUMP=1 on "
                "SIGSEGV,\n"
                "    SIGBUS, SIGFPE, SIGILL and SIGABRT;\n",
                signal_text(sbuf, sizeof sbuf, sig));
    fputs("  - it is not instrumented: not linked with libstageprof, or it "
          "never calls it;\n"
          "  - it was built with STAGEPROF_DISABLE: tracing compiled out;\n",
          stderr);
    if (sig == 0)
        fputs("  - it ended without a normal exit (_exit(), exec(), a "
              "signal) before writing;\n",
              stderr);
    fputs("  - it chooses another directory or turns tracing off through "
          "the\n"
          "    stageprof_config_t it gives stageprof_start() (dir, enable), "
          "which\n"
          "    wins over STAGEPROF_DIR and STAGEPROF_ENABLE.\n",
          stderr);
}

/* Entry ------------------------------------------------------------------- */

int cmd_record(struct cli_ctx *ctx, int argc, char **argv)
{
    /* "+": stop at COMMAND, so that its options stay its own. */
    static const char shortopts[] = "+:o:" CLI_GLOBAL_SHORTOPTS;
    /* report's options, forwarded as they are (cmd_report.c). */
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_REPORT_LONGOPTS,
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    struct args report_opts = {0};
    int c, li = -1;
    while ((c = getopt_long(argc, argv, shortopts, longopts, &li)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            args_free(&report_opts);
            return CLI_EXIT_OK;
        case 'o':
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "-o wants a directory, not ''");
            out = optarg;
            break;
        default:
            if (c >= CLI_REPORT_FORMAT && c < CLI_REPORT_END && li >= 0) {
                /* One of report's: passed on as it came. */
                const struct option *o = &longopts[li];
                args_take(ctx, &report_opts,
                          o->has_arg ? xprintf(ctx, "--%s=%s", o->name, optarg)
                                     : xprintf(ctx, "--%s", o->name));
                break;
            }
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
        li = -1;
    }
    if (optind >= argc)
        cli_usage_error(ctx, "no command given");
    char **cmd = argv + optind;
    check_report_options(ctx, &report_opts);

    /* The directory, and what it held before. */
    char *dir;
    struct listing before = {0};
    if (out == NULL) {
        dir = make_fresh_dir(ctx);
    } else {
        dir = xprintf(ctx, "%s", out);
        struct stat st;
        int err = make_dirs(ctx, dir);
        if (err == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
            err = ENOTDIR;
        if (err != 0)
            cli_die(ctx, "cannot use %s as the trace directory: %s", dir,
                    strerror(err));
        list_dir(ctx, dir, &before);
    }
    /* Absolute, so that a COMMAND that changes directory writes here. */
    char *abs = realpath(dir, NULL);
    if (abs == NULL)
        cli_die(ctx, "cannot resolve %s: %s", dir, strerror(errno));
    struct args env = {0};
    child_env(ctx, abs, &env);
    cli_verbose(ctx, 1, "running %s with STAGEPROF_ENABLE=1 STAGEPROF_DIR=%s",
                cmd[0], abs);

    /*
     * Ignore SIGINT and SIGQUIT while COMMAND runs, as time(1) does: the
     * terminal sends them to both, COMMAND decides, and record lives on to
     * report. COMMAND gets back the dispositions record was given (default
     * at exec, unless the caller ignored them).
     */
    struct sigaction ign, old_int, old_quit;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sigset_t defaults;
    sigemptyset(&defaults);
    if (old_int.sa_handler != SIG_IGN)
        sigaddset(&defaults, SIGINT);
    if (old_quit.sa_handler != SIG_IGN)
        sigaddset(&defaults, SIGQUIT);

    int status = 0, rc, sig = 0;
    pid_t pid = spawn(ctx, cmd, env.v, &defaults, &status);
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                cli_die(ctx, "cannot wait for %s: %s", cmd[0], strerror(errno));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    args_free(&env);
    free(abs);

    char buf[CLI_PRINTABLE_MAX], sbuf[64];
    if (pid < 0) {
        rc = status;
    } else if (WIFSIGNALED(status)) {
        sig = WTERMSIG(status);
        rc = 128 + sig;
        int core = 0;
#ifdef WCOREDUMP
        core = WCOREDUMP(status) != 0;
#endif
        fprintf(stderr,
                "stageprof record: %s was killed by %s%s; exit status %d\n",
                cli_printable(buf, sizeof buf, cmd[0]),
                signal_text(sbuf, sizeof sbuf, sig),
                core ? " (core dumped)" : "", rc);
    } else {
        rc = WEXITSTATUS(status);
        if (rc != 0)
            cli_warn(ctx, "%s exited with status %d",
                     cli_printable(buf, sizeof buf, cmd[0]), rc);
    }

    struct args paths = {0};
    if (pid > 0)
        new_traces(ctx, dir, &before, &paths);
    listing_free(&before);
    if (paths.n == 0) {
        if (pid > 0) {
            explain_no_trace(cmd[0], dir, out == NULL, sig);
            if (rc == 0)
                rc = CLI_EXIT_FAIL;
        }
        /* Leave no empty directory behind (a non-empty one stays). */
        if (out == NULL)
            rmdir(dir);
        free(dir);
        args_free(&report_opts);
        return rc;
    }

    /* report [options] -- TRACE...: a directory named "-x" stays a path. */
    struct args rargv = {0};
    args_add(ctx, &rargv, "report");
    for (size_t i = 0; i < report_opts.n; i++)
        args_add(ctx, &rargv, report_opts.v[i]);
    args_add(ctx, &rargv, "--");
    for (size_t i = 0; i < paths.n; i++) {
        cli_verbose(ctx, 0, "trace written to %s", paths.v[i]);
        args_add(ctx, &rargv, paths.v[i]);
    }
    args_free(&paths);
    args_free(&report_opts);
    free(dir);
    cli_getopt_reset();
    int report_rc = cmd_report(ctx, (int)rargv.n, rargv.v);
    args_free(&rargv);
    return rc != 0 ? rc : report_rc;
}
