/*
 * json.h - JSON text output helpers shared by the trace writer and the CLI.
 *
 * Escaping follows RFC 8259 and keeps the output valid whatever the input:
 * control characters become \uXXXX (or \n, \t, ...), invalid UTF-8 bytes
 * (stray continuations, overlong forms, surrogates, code points above
 * U+10FFFF, truncated sequences) each become U+FFFD, and U+2028/U+2029 are
 * escaped so the text is also safe inside JavaScript.
 */
#ifndef STAGEPROF_JSON_H
#define STAGEPROF_JSON_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

/*
 * Escape @len bytes of @s into @out (no quotes added). @out must hold
 * 6 * @len bytes at least. Returns the bytes written.
 */
size_t stageprof__json_escape(char *out, const char *s, size_t len);
/*
 * Length of the well-formed UTF-8 sequence at @s (1 to 4 bytes, @avail
 * left), or 0: an invalid byte, an overlong form, a surrogate, a code
 * point above U+10FFFF or a sequence cut short.
 */
size_t stageprof__utf8_valid(const unsigned char *s, size_t avail);
/* Append "@s" (quoted, escaped) to @sb. */
void stageprof__json_str(struct strbuf *sb, const char *s, size_t len);

/* Decimal digits of @v into @out (20 bytes at most); returns the length. */
size_t stageprof__fmt_u64(char *out, uint64_t v);
size_t stageprof__fmt_i64(char *out, int64_t v);
/* Lowercase hex digits of @v, no prefix (16 bytes at most); the length. */
size_t stageprof__fmt_hex(char *out, uint64_t v);
/* @ns as microseconds with exactly three decimals ("12.345"). */
size_t stageprof__fmt_us3(char *out, uint64_t ns);
/* A double as JSON: shortest round-trip form; NaN/Inf as strings. */
size_t stageprof__fmt_double(char *out, double v);

#endif /* STAGEPROF_JSON_H */
