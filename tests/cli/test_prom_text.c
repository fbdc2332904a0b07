/*
 * test_prom_text.c - the Prometheus text reader of the CLI (cli/prom_text.c):
 * families, series and buckets from valid text, label escapes, special
 * values, bucket order, and hostile input (garbage lines, a 1 MB line, too
 * many labels, random mutations) skipped without harm.
 */
#include "prom_text.h"

#include <math.h>

#include "test.h"

static void parse(struct prom_doc *doc, const char *text)
{
    ASSERT_EQ(prom_text_parse(text, strlen(text), doc), 0);
}

static const struct prom_series *one(const struct prom_doc *doc,
                                     const char *family, size_t i)
{
    const struct prom_family *f = prom_doc_family(doc, family);
    ASSERT_NOT_NULL(f);
    ASSERT_LT(i, f->nseries);
    return &f->series[i];
}

static const char valid[] =
    "# HELP ai_pipeline_stage_duration_seconds Stage latency.\n"
    "# TYPE ai_pipeline_stage_duration_seconds histogram\n"
    "ai_pipeline_stage_duration_seconds_bucket{stage=\"infer\",category="
    "\"compute\",le=\"0.001\"} 3\n"
    "ai_pipeline_stage_duration_seconds_bucket{stage=\"infer\",category="
    "\"compute\",le=\"0.01\"} 7\n"
    "ai_pipeline_stage_duration_seconds_bucket{stage=\"infer\",category="
    "\"compute\",le=\"+Inf\"} 8\n"
    "ai_pipeline_stage_duration_seconds_sum{stage=\"infer\",category="
    "\"compute\"} 0.05\n"
    "ai_pipeline_stage_duration_seconds_count{stage=\"infer\",category="
    "\"compute\"} 8\n"
    "ai_pipeline_stage_duration_seconds_bucket{category=\"data\",stage="
    "\"decode\",le=\"0.001\"} 1\n"
    "ai_pipeline_stage_duration_seconds_bucket{category=\"data\",stage="
    "\"decode\",le=\"+Inf\"} 2\n"
    "# TYPE ai_pipeline_runs_total counter\n"
    "ai_pipeline_runs_total{run=\"frame\"} 42\n"
    "# TYPE process_resident_memory_bytes gauge\n"
    "process_resident_memory_bytes 1.5e6\n"
    "untyped_metric 7 1700000000000\n";

STAGEPROF_TEST(valid_families)
{
    struct prom_doc doc;
    parse(&doc, valid);
    ASSERT_EQ(doc.skipped, 0);
    ASSERT_EQ(doc.nfamilies, 4);
    const struct prom_family *h =
        prom_doc_family(&doc, "ai_pipeline_stage_duration_seconds");
    ASSERT_NOT_NULL(h);
    ASSERT_EQ(h->type, PROM_HISTOGRAM);
    ASSERT_EQ(h->nseries, 2);
    const struct prom_series *s = &h->series[0];
    ASSERT_STREQ(prom_series_label(s, "stage"), "infer");
    ASSERT_STREQ(prom_series_label(s, "category"), "compute");
    ASSERT_NULL(prom_series_label(s, "le"));
    ASSERT_EQ(s->nbuckets, 3);
    ASSERT_DBL_NEAR(s->buckets[0].le, 0.001, 1e-15);
    ASSERT_DBL_NEAR(s->buckets[1].count, 7, 0);
    ASSERT_TRUE(isinf(s->buckets[2].le) && s->buckets[2].le > 0);
    ASSERT_TRUE(s->has_sum && s->has_count);
    ASSERT_DBL_NEAR(s->sum, 0.05, 1e-15);
    ASSERT_DBL_NEAR(s->count, 8, 0);
    ASSERT_EQ(h->series[1].nbuckets, 2);
    /* The key does not depend on the order labels are written in. */
    ASSERT_TRUE(prom_family_series(h, s->key) == s);
    const struct prom_series *r = one(&doc, "ai_pipeline_runs_total", 0);
    ASSERT_EQ(prom_doc_family(&doc, "ai_pipeline_runs_total")->type,
              PROM_COUNTER);
    ASSERT_TRUE(r->has_value);
    ASSERT_DBL_NEAR(r->value, 42, 0);
    double v;
    ASSERT_EQ(prom_doc_scalar(&doc, "process_resident_memory_bytes", &v), 0);
    ASSERT_DBL_NEAR(v, 1.5e6, 0);
    ASSERT_EQ(prom_doc_scalar(&doc, "untyped_metric", &v), 0);
    ASSERT_DBL_NEAR(v, 7, 0);
    ASSERT_EQ(prom_doc_scalar(&doc, "missing", &v), -1);
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(same_labels_other_order_same_series)
{
    struct prom_doc doc;
    parse(&doc, "m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 5\n"
                "m{a=\"1\"} 3\nm{a=\"1\",b=\"\"} 4\n");
    const struct prom_family *f = prom_doc_family(&doc, "m");
    ASSERT_EQ(f->nseries, 3);
    ASSERT_DBL_NEAR(f->series[0].value, 5, 0);
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(escaped_labels)
{
    struct prom_doc doc;
    parse(&doc, "m{stage=\"a\\\"b\\\\c\\nd\",x=\"{},= \"} 1\n"
                "m{stage=\"bad\\t\"} 2\n");
    ASSERT_EQ(doc.skipped, 1); /* \t is no escape of the format */
    ASSERT_EQ(doc.first_bad, 2);
    const struct prom_series *s = one(&doc, "m", 0);
    ASSERT_STREQ(prom_series_label(s, "stage"), "a\"b\\c\nd");
    ASSERT_STREQ(prom_series_label(s, "x"), "{},= ");
    ASSERT_EQ(prom_doc_family(&doc, "m")->nseries, 1);
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(special_values)
{
    struct prom_doc doc;
    parse(&doc, "a NaN\nb +Inf\nc -Inf\nd 1e-3\ne -0.5 123\nf Inf\n"
                "g 1x\nh 1 2 3\ni 1 1.5\nj\n");
    ASSERT_TRUE(isnan(one(&doc, "a", 0)->value));
    ASSERT_TRUE(isinf(one(&doc, "b", 0)->value) &&
                one(&doc, "b", 0)->value > 0);
    ASSERT_TRUE(isinf(one(&doc, "c", 0)->value) &&
                one(&doc, "c", 0)->value < 0);
    ASSERT_DBL_NEAR(one(&doc, "d", 0)->value, 1e-3, 1e-18);
    ASSERT_DBL_NEAR(one(&doc, "e", 0)->value, -0.5, 0);
    ASSERT_TRUE(isinf(one(&doc, "f", 0)->value));
    /* g: trailing junk; h: two tokens after the value; i: a fractional
     * timestamp; j: no value. */
    ASSERT_EQ(doc.skipped, 4);
    ASSERT_NULL(prom_doc_family(&doc, "g"));
    ASSERT_NULL(prom_doc_family(&doc, "j"));
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(out_of_order_buckets)
{
    struct prom_doc doc;
    parse(&doc, "# TYPE h histogram\n"
                "h_bucket{le=\"+Inf\"} 10\n"
                "h_count 10\n"
                "h_bucket{le=\"0.5\"} 6\n"
                "h_bucket{le=\"0.1\"} 2\n"
                "h_bucket{le=\"0.5\"} 7\n" /* a later duplicate wins */
                "h_bucket{le=\"1\"} 9\n"
                "h_bucket{le=\"nope\"} 9\n"
                "h_bucket 9\n"
                "h_sum 4.5\n");
    ASSERT_EQ(doc.skipped, 2);
    const struct prom_series *s = one(&doc, "h", 0);
    ASSERT_EQ(s->nbuckets, 4);
    ASSERT_DBL_NEAR(s->buckets[0].le, 0.1, 0);
    ASSERT_DBL_NEAR(s->buckets[0].count, 2, 0);
    ASSERT_DBL_NEAR(s->buckets[1].le, 0.5, 0);
    ASSERT_DBL_NEAR(s->buckets[1].count, 7, 0);
    ASSERT_DBL_NEAR(s->buckets[2].le, 1, 0);
    ASSERT_TRUE(isinf(s->buckets[3].le));
    ASSERT_DBL_NEAR(s->buckets[3].count, 10, 0);
    ASSERT_DBL_NEAR(s->sum, 4.5, 0);
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(garbage_lines)
{
    static const char text[] = "good 1\n"
                               "}{ 1\n"
                               "bad{ 1\n"
                               "bad{a=\"1\" 1\n"
                               "bad{a=1} 1\n"
                               "bad{a=\"unterminated} 1\n"
                               "bad{a=\"1\",a=\"2\"} 1\n"
                               "bad{1a=\"x\"} 1\n"
                               "bad{a=\"1\"}\n"
                               "bad\t\n"
                               "9bad 1\n"
                               "\xff\xfe\x01 binary\n"
                               "bad{a=\"x\\\"} 1\n"
                               "# TYPE\n"
                               "   \t  \n"
                               "# just a comment\n"
                               "good2{a=\"1\",} 2\r\n"
                               "good3   {  a = \"1\" }   3";
    struct prom_doc doc;
    ASSERT_EQ(prom_text_parse(text, sizeof text - 1, &doc), 0);
    ASSERT_EQ(doc.skipped, 13);
    ASSERT_EQ(doc.first_bad, 2);
    ASSERT_EQ(doc.nfamilies, 3);
    ASSERT_DBL_NEAR(one(&doc, "good", 0)->value, 1, 0);
    ASSERT_DBL_NEAR(one(&doc, "good2", 0)->value, 2, 0);
    ASSERT_DBL_NEAR(one(&doc, "good3", 0)->value, 3, 0);
    prom_doc_fini(&doc);

    /* A NUL inside a line makes it garbage, the next line still counts. */
    static const char nul[] = "a{x=\"1\0\"} 1\nb 2\n";
    ASSERT_EQ(prom_text_parse(nul, sizeof nul - 1, &doc), 0);
    ASSERT_EQ(doc.skipped, 1);
    ASSERT_DBL_NEAR(one(&doc, "b", 0)->value, 2, 0);
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(empty_input)
{
    struct prom_doc doc;
    ASSERT_EQ(prom_text_parse("", 0, &doc), 0);
    ASSERT_EQ(doc.nfamilies, 0);
    ASSERT_NULL(prom_doc_family(&doc, "x"));
    prom_doc_fini(&doc);
    prom_doc_fini(&doc); /* twice is fine */
}

STAGEPROF_TEST(megabyte_lines)
{
    size_t big = 1 << 20;
    char *text = malloc(3 * big + 100);
    ASSERT_NOT_NULL(text);
    size_t n = 0;
    /* A 1 MB garbage line, a 1 MB label value, a 1 MB number. */
    memset(text + n, 'x', big);
    n += big;
    text[n++] = '{';
    text[n++] = '\n';
    memcpy(text + n, "m{v=\"", 5);
    n += 5;
    memset(text + n, 'y', big);
    n += big;
    memcpy(text + n, "\"} 4\n", 5);
    n += 5;
    memcpy(text + n, "z ", 2);
    n += 2;
    memset(text + n, '1', big);
    n += big;
    text[n++] = '\n';
    memcpy(text + n, "after 5\n", 8);
    n += 8;
    struct prom_doc doc;
    ASSERT_EQ(prom_text_parse(text, n, &doc), 0);
    ASSERT_EQ(doc.skipped, 2);
    const struct prom_series *s = one(&doc, "m", 0);
    ASSERT_EQ(strlen(prom_series_label(s, "v")), big);
    ASSERT_DBL_NEAR(s->value, 4, 0);
    ASSERT_DBL_NEAR(one(&doc, "after", 0)->value, 5, 0);
    prom_doc_fini(&doc);
    free(text);
}

STAGEPROF_TEST(too_many_labels)
{
    char line[8192];
    size_t n = 0;
    n += (size_t)snprintf(line + n, sizeof line - n, "m{");
    for (int i = 0; i <= PROM_MAX_LABELS; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "l%d=\"v\",", i);
    snprintf(line + n, sizeof line - n, "} 1\nok 1\n");
    struct prom_doc doc;
    parse(&doc, line);
    ASSERT_EQ(doc.skipped, 1);
    ASSERT_NULL(prom_doc_family(&doc, "m"));
    ASSERT_NOT_NULL(prom_doc_family(&doc, "ok"));
    prom_doc_fini(&doc);
}

STAGEPROF_TEST(many_series)
{
    /* 200000 series of one family: hashing keeps this linear. */
    size_t nseries = 200000, cap = nseries * 40;
    char *text = malloc(cap);
    ASSERT_NOT_NULL(text);
    size_t n = 0;
    n += (size_t)snprintf(text + n, cap - n, "# TYPE h histogram\n");
    for (size_t i = 0; i < nseries; i++)
        n += (size_t)snprintf(text + n, cap - n,
                              "h_bucket{s=\"%zu\",le=\"+Inf\"} %zu\n", i, i);
    struct prom_doc doc;
    ASSERT_EQ(prom_text_parse(text, n, &doc), 0);
    const struct prom_family *f = prom_doc_family(&doc, "h");
    ASSERT_EQ(f->nseries, nseries);
    ASSERT_DBL_NEAR(f->series[nseries - 1].buckets[0].count,
                    (double)(nseries - 1), 0);
    prom_doc_fini(&doc);
    free(text);
}

STAGEPROF_TEST(random_mutations)
{
    /* Flip, cut and duplicate bytes of the valid text: never a crash. */
    size_t len = sizeof valid - 1;
    char *buf = malloc(2 * len);
    ASSERT_NOT_NULL(buf);
    unsigned long long x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, valid, len);
        size_t n = len;
        for (int k = 0; k < 1 + round % 8; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t at = (size_t)(x % n);
            switch ((x >> 32) % 3) {
            case 0:
                buf[at] = (char)(x >> 40);
                break;
            case 1:
                n = at + 1;
                break;
            default:
                if (n < 2 * len - 1) {
                    memmove(buf + at + 1, buf + at, n - at);
                    n++;
                }
            }
        }
        struct prom_doc doc;
        ASSERT_EQ(prom_text_parse(buf, n, &doc), 0);
        prom_doc_fini(&doc);
    }
    free(buf);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(valid_families),
                    STAGEPROF_CASE(same_labels_other_order_same_series),
                    STAGEPROF_CASE(escaped_labels),
                    STAGEPROF_CASE(special_values),
                    STAGEPROF_CASE(out_of_order_buckets),
                    STAGEPROF_CASE(garbage_lines), STAGEPROF_CASE(empty_input),
                    STAGEPROF_CASE(megabyte_lines),
                    STAGEPROF_CASE(too_many_labels),
                    STAGEPROF_CASE(many_series),
                    STAGEPROF_CASE(random_mutations))
