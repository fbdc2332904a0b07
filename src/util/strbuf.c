/*
 * strbuf.c - growable byte buffer (see strbuf.h).
 *
 * Growth doubles the capacity (at least 256 bytes), so appends are
 * amortised O(1); the buffer is always NUL-terminated once allocated.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

void stageprof__sb_init(struct strbuf *sb, void *(*alloc)(size_t),
                        void (*release)(void *))
{
    memset(sb, 0, sizeof *sb);
    sb->alloc = alloc;
    sb->release = release;
}

void stageprof__sb_fini(struct strbuf *sb)
{
    if (sb->buf != NULL)
        (sb->release ? sb->release : free)(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

void stageprof__sb_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->buf != NULL)
        sb->buf[0] = '\0';
}

int stageprof__sb_reserve(struct strbuf *sb, size_t extra)
{
    if (sb->oom)
        return -1;
    if (extra > SIZE_MAX / 2 - sb->len) {
        sb->oom = 1;
        return -1;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap *= 2;
    char *nb = (sb->alloc ? sb->alloc : malloc)(cap);
    if (nb == NULL) {
        sb->oom = 1;
        return -1;
    }
    if (sb->buf != NULL) {
        memcpy(nb, sb->buf, sb->len + 1);
        (sb->release ? sb->release : free)(sb->buf);
    } else {
        nb[0] = '\0';
    }
    sb->buf = nb;
    sb->cap = cap;
    return 0;
}

void stageprof__sb_add(struct strbuf *sb, const void *data, size_t len)
{
    if (stageprof__sb_reserve(sb, len) != 0)
        return;
    memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void stageprof__sb_adds(struct strbuf *sb, const char *s)
{
    stageprof__sb_add(sb, s, strlen(s));
}

void stageprof__sb_addf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        stageprof__sb_add(sb, small, (size_t)n);
        return;
    }
    if (stageprof__sb_reserve(sb, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}
