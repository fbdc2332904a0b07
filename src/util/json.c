/*
 * json.c - JSON escaping and number formatting (see json.h).
 *
 * Formatting is hand-written because the trace writer formats tens of
 * millions of numbers per second; printf is reserved for doubles.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/json.h"
#include "util/strbuf.h"

static const char hex[] = "0123456789abcdef";

size_t stageprof__utf8_valid(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (avail < n)
        return 0;
    unsigned cp = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

size_t stageprof__json_escape(char *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    char *o = out;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            i++;
            continue;
        }
        size_t n = stageprof__utf8_valid(p + i, len - i);
        if (n == 0) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
            i++;
        } else if (n == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
            memcpy(o, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            o += 6;
            i += 3;
        } else {
            memcpy(o, p + i, n);
            o += n;
            i += n;
        }
    }
    return (size_t)(o - out);
}

void stageprof__json_str(struct strbuf *sb, const char *s, size_t len)
{
    if (len > (SIZE_MAX - 2) / 6 || stageprof__sb_reserve(sb, 6 * len + 2))
        return;
    char *o = sb->buf + sb->len;
    *o++ = '"';
    o += stageprof__json_escape(o, s, len);
    *o++ = '"';
    sb->len = (size_t)(o - sb->buf);
    sb->buf[sb->len] = '\0';
}

/* "00".."99": two digits per division, from the end. */
static const char digits2[201] = "00010203040506070809"
                                 "10111213141516171819"
                                 "20212223242526272829"
                                 "30313233343536373839"
                                 "40414243444546474849"
                                 "50515253545556575859"
                                 "60616263646566676869"
                                 "70717273747576777879"
                                 "80818283848586878889"
                                 "90919293949596979899";

static inline size_t count_digits(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

size_t stageprof__fmt_u64(char *out, uint64_t v)
{
    size_t n = count_digits(v);
    char *p = out + n;
    while (v >= 100) {
        unsigned k = (unsigned)(v % 100) * 2;
        v /= 100;
        p -= 2;
        p[0] = digits2[k];
        p[1] = digits2[k + 1];
    }
    if (v >= 10) {
        p -= 2;
        p[0] = digits2[v * 2];
        p[1] = digits2[v * 2 + 1];
    } else {
        *--p = (char)('0' + v);
    }
    return n;
}

size_t stageprof__fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return stageprof__fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + stageprof__fmt_u64(out + 1, 0 - (uint64_t)v);
}

size_t stageprof__fmt_hex(char *out, uint64_t v)
{
    static const char hexd[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hexd[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t stageprof__fmt_us3(char *out, uint64_t ns)
{
    size_t n = stageprof__fmt_u64(out, ns / 1000);
    unsigned frac = (unsigned)(ns % 1000);
    unsigned lo = (frac % 100) * 2;
    out[n] = '.';
    out[n + 1] = (char)('0' + frac / 100);
    out[n + 2] = digits2[lo];
    out[n + 3] = digits2[lo + 1];
    return n + 4;
}

size_t stageprof__fmt_double(char *out, double v)
{
    if (isnan(v)) {
        memcpy(out, "\"NaN\"", 5);
        return 5;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"", v > 0 ? 10 : 11);
        return v > 0 ? 10 : 11;
    }
    /* Shortest of %.15g/%.17g that reads back exactly. */
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%.15g", v);
    double back;
    if (sscanf(buf, "%lf", &back) != 1 || back != v)
        n = snprintf(buf, sizeof buf, "%.17g", v);
    /* A host program's LC_NUMERIC may use a decimal comma. */
    for (int i = 0; i < n; i++)
        if (buf[i] == ',')
            buf[i] = '.';
    memcpy(out, buf, (size_t)n);
    return (size_t)n;
}
