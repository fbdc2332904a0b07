/*
 * sysinfo.c - facts about the machine and process for the trace metadata:
 * host name, CPU model, core count, kernel, command line, thread ids.
 *
 * Read when a trace is written (cold path); every source may be missing
 * (containers, seccomp), in which case the field is written as null.
 */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "util/json.h"
#include "util/strbuf.h"

int stageprof__sysinfo_tid(void)
{
    return (int)syscall(SYS_gettid);
}

/* Read up to @len - 1 bytes of @path; returns the count, -1 on failure. */
static long read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (long)n;
}

void stageprof__sysinfo_program(char *buf, size_t len)
{
    if (read_file("/proc/self/comm", buf, len) <= 0) {
        snprintf(buf, len, "process");
        return;
    }
    buf[strcspn(buf, "\n")] = '\0';
}

static void json_member_str(struct strbuf *sb, const char *key, const char *val)
{
    stageprof__sb_addf(sb, ",\"%s\":", key);
    if (val == NULL)
        stageprof__sb_adds(sb, "null");
    else
        stageprof__json_str(sb, val, strlen(val));
}

static void cpu_model(char *out, size_t len)
{
    static char info[16384];
    out[0] = '\0';
    if (read_file("/proc/cpuinfo", info, sizeof info) <= 0)
        return;
    const char *p = strstr(info, "model name");
    if (p == NULL)
        return;
    p = strchr(p, ':');
    if (p == NULL)
        return;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, "\n");
    if (n >= len)
        n = len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

void stageprof__sysinfo_json(struct strbuf *sb)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    json_member_str(sb, "host", host[0] ? host : NULL);

    char model[256];
    cpu_model(model, sizeof model);
    json_member_str(sb, "cpu_model", model[0] ? model : NULL);
    stageprof__sb_addf(sb, ",\"cores\":%ld", sysconf(_SC_NPROCESSORS_ONLN));

    struct utsname u;
    if (uname(&u) == 0) {
        char kernel[sizeof u.sysname + sizeof u.release + 2];
        snprintf(kernel, sizeof kernel, "%s %s", u.sysname, u.release);
        json_member_str(sb, "kernel", kernel);
        json_member_str(sb, "kernel_version", u.version);
        json_member_str(sb, "arch", u.machine);
    } else {
        json_member_str(sb, "kernel", NULL);
    }

    /* The command line as an array: arguments may hold any byte. */
    static char cmd[32768];
    long n = read_file("/proc/self/cmdline", cmd, sizeof cmd);
    stageprof__sb_adds(sb, ",\"command_line\":[");
    for (long i = 0, first = 1; n > 0 && i < n; first = 0) {
        size_t len = strnlen(cmd + i, (size_t)(n - i));
        if (!first)
            stageprof__sb_adds(sb, ",");
        stageprof__json_str(sb, cmd + i, len);
        i += (long)len + 1;
    }
    stageprof__sb_adds(sb, "]");
}
