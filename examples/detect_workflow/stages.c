/*
 * stages.c - the work of each stage of the detection workflow, on darknet.
 *
 * Each stage function opens its span first and closes its own clock last,
 * so the span covers the work, the busy work of a slow-down and the
 * clock itself. See stages.h for the table of stages.
 *
 * Models come from darknet configs. Without weight files darknet gives
 * every layer random weights, but leaves each batch-norm layer's rolling
 * variance at 0, which divides by zero and makes every output NaN;
 * models_load sets it to 1 (and the rolling mean to 0), after which the
 * outputs are finite: real compute, meaningless boxes. Scores are still
 * checked with isfinite before any conversion to an integer.
 */
#include "stages.h"

#include <stageprof.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILE_BYTES (64u << 20) /* larger input files are refused */

const char *const stage_names[STAGE_COUNT] = {
#define X(id, name, cat) name,
    DETECT_STAGES(X)
#undef X
};
const char *const stage_cats[STAGE_COUNT] = {
#define X(id, name, cat) cat,
    DETECT_STAGES(X)
#undef X
};

struct stage_config stage_cfg = {.slow_stage = -1};

/* Own timings ------------------------------------------------------------ */

static _Atomic uint64_t own_calls[STAGE_COUNT], own_ns[STAGE_COUNT],
    own_cpu_ns[STAGE_COUNT], own_busy_ns[STAGE_COUNT];

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t stage_now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

struct stage_clock stage_clock_start(int stage)
{
    struct stage_clock c = {stage, stage_now_ns(),
                            clock_ns(CLOCK_THREAD_CPUTIME_ID)};
    return c;
}

/* Arithmetic the compiler cannot drop, until this thread has run @ns. */
static void busy_for(uint64_t ns)
{
    uint64_t end = clock_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
    volatile double x = 1.0;
    while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < end)
        for (int i = 0; i < 512; i++)
            x = x * 1.0000001 + 1e-9;
}

void stage_clock_stop(const struct stage_clock *c)
{
    uint64_t cpu1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), cpu2 = cpu1;
    if (c->stage == stage_cfg.slow_stage) {
        busy_for((cpu1 - c->cpu0) * (uint64_t)stage_cfg.slow_pct / 100u);
        cpu2 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        atomic_fetch_add(&own_busy_ns[c->stage], cpu2 - cpu1);
    }
    atomic_fetch_add(&own_ns[c->stage], stage_now_ns() - c->t0);
    atomic_fetch_add(&own_cpu_ns[c->stage], cpu2 - c->cpu0);
    atomic_fetch_add(&own_calls[c->stage], 1);
}

void stage_totals_get(int stage, struct stage_totals *t)
{
    t->calls = atomic_load(&own_calls[stage]);
    t->wall_ns = atomic_load(&own_ns[stage]);
    t->cpu_ns = atomic_load(&own_cpu_ns[stage]);
    t->busy_cpu_ns = atomic_load(&own_busy_ns[stage]);
}

/* Stages ------------------------------------------------------------------ */

int stage_read(struct frame *f)
{
    STAGEPROF_SCOPE(span, "read", "io");
    struct stage_clock clk = stage_clock_start(STAGE_READ);
    int rc = codec_read_file(f->path, MAX_FILE_BYTES, &f->file, &f->file_len,
                             f->err, sizeof f->err);
    STAGEPROF_ARG_INT(span, "bytes", f->file_len);
    stage_clock_stop(&clk);
    return rc;
}

int stage_decode(struct frame *f)
{
    STAGEPROF_SCOPE(span, "decode", "data");
    struct stage_clock clk = stage_clock_start(STAGE_DECODE);
    int rc = codec_decode(f->file, f->file_len, &f->rgb, f->err, sizeof f->err);
    free(f->file);
    f->file = NULL;
    STAGEPROF_ARG_INT(span, "width", f->rgb.w);
    STAGEPROF_ARG_INT(span, "height", f->rgb.h);
    stage_clock_stop(&clk);
    return rc;
}

/* Letterbox to the detector's input; the planes are kept for drawing. */
int stage_preprocess(struct frame *f, const struct models *m)
{
    STAGEPROF_SCOPE(span, "preprocess", "preprocess");
    struct stage_clock clk = stage_clock_start(STAGE_PREPROCESS);
    int w = f->rgb.w, h = f->rgb.h;
    f->im = make_image(w, h, 3);
    /* Interleaved bytes to planes of floats in [0, 1]. */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                f->im.data[(size_t)c * w * h + (size_t)y * w + x] =
                    f->rgb.px[((size_t)y * w + x) * 3 + c] / 255.0f;
    codec_free(&f->rgb);
    f->input = letterbox_image(f->im, m->det->w, m->det->h);
    stage_clock_stop(&clk);
    return 0;
}

int stage_detect(struct frame *f, const struct models *m)
{
    STAGEPROF_SCOPE(span, "detect", "compute");
    struct stage_clock clk = stage_clock_start(STAGE_DETECT);
    network_predict(m->det, f->input.data);
    stage_clock_stop(&clk);
    return 0;
}

/* A box's best class score, or -1 when it has none or is not finite. */
static float best_score(const detection *d, int classes, int *cls)
{
    float best = -1.0f;
    const box *b = &d->bbox;
    if (!isfinite(b->x) || !isfinite(b->y) || !isfinite(b->w) ||
        !isfinite(b->h))
        return -1.0f;
    for (int j = 0; j < classes; j++)
        if (isfinite(d->prob[j]) && d->prob[j] > 0.0f && d->prob[j] > best) {
            best = d->prob[j];
            *cls = j;
        }
    return best;
}

/* Boxes from the detector's outputs, NMS, and the top-K strongest. */
int stage_postprocess(struct frame *f, const struct models *m)
{
    STAGEPROF_SCOPE(span, "postprocess", "postprocess");
    struct stage_clock clk = stage_clock_start(STAGE_POSTPROCESS);
    int n = 0;
    f->dets = get_network_boxes(m->det, f->im.w, f->im.h, stage_cfg.thresh,
                                0.5f, NULL, 1, &n);
    f->ndets = n;
    if (stage_cfg.nms > 0.0f)
        do_nms_sort(f->dets, n, m->classes, stage_cfg.nms);
    float score[MAX_TOPK];
    f->nbest = 0;
    for (int i = 0; i < n; i++) {
        int cls = 0;
        float s = best_score(&f->dets[i], m->classes, &cls);
        if (s <= 0.0f)
            continue;
        /* Insertion into the short sorted list of the strongest. */
        int k = f->nbest < stage_cfg.topk ? f->nbest++ : stage_cfg.topk;
        while (k > 0 && score[k - 1] < s) {
            if (k < stage_cfg.topk) {
                score[k] = score[k - 1];
                f->best[k] = f->best[k - 1];
            }
            k--;
        }
        if (k < stage_cfg.topk) {
            score[k] = s;
            f->best[k] = i;
        }
    }
    STAGEPROF_ARG_INT(span, "boxes", n);
    stage_clock_stop(&clk);
    return 0;
}

/* A relative coordinate to a pixel index in [0, side - 1]. */
static int to_pixel(float rel, int side)
{
    double v = floor((double)rel * side);
    if (!(v >= 0.0)) /* also NaN */
        return 0;
    return v > side - 1 ? side - 1 : (int)v;
}

/* Cut each of the strongest boxes out and size it for the classifier. */
int stage_crop(struct frame *f, const struct models *m)
{
    (void)m;
    STAGEPROF_SCOPE(span, "crop", "preprocess");
    struct stage_clock clk = stage_clock_start(STAGE_CROP);
    for (int k = 0; k < f->nbest; k++) {
        const box *b = &f->dets[f->best[k]].bbox;
        int x0 = to_pixel(b->x - b->w / 2, f->im.w);
        int y0 = to_pixel(b->y - b->h / 2, f->im.h);
        int x1 = to_pixel(b->x + b->w / 2, f->im.w);
        int y1 = to_pixel(b->y + b->h / 2, f->im.h);
        image c = crop_image(f->im, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
        f->crop[k] = resize_image(c, stage_cfg.crop_side, stage_cfg.crop_side);
        free_image(c);
    }
    STAGEPROF_ARG_INT(span, "crops", f->nbest);
    stage_clock_stop(&clk);
    return 0;
}

int stage_classify(struct frame *f, const struct models *m, int i)
{
    STAGEPROF_SCOPE(span, "classify", "compute");
    struct stage_clock clk = stage_clock_start(STAGE_CLASSIFY);
    float *p = network_predict(m->cls, f->crop[i].data);
    struct crop_result r = {f->best[i], -1, 0.0f};
    for (int j = 0; j < m->cls->outputs; j++)
        if (isfinite(p[j]) && (r.label < 0 || p[j] > r.score)) {
            r.label = j;
            r.score = p[j];
        }
    f->crops[f->ncrops++] = r;
    STAGEPROF_ARG_INT(span, "crop", i);
    stage_clock_stop(&clk);
    return 0;
}

/* Boxes drawn on the picture, which is then encoded as a JPEG. */
int stage_visualize(struct frame *f)
{
    STAGEPROF_SCOPE(span, "visualize", "visualize");
    struct stage_clock clk = stage_clock_start(STAGE_VISUALIZE);
    int w = f->im.w, h = f->im.h, rc = 0;
    for (int i = 0; i < f->ndets; i++) {
        int cls = 0;
        if (best_score(&f->dets[i], f->dets[i].classes, &cls) <= 0.0f)
            continue;
        const box *b = &f->dets[i].bbox;
        float r = (float)((cls * 37) % 100) / 100.0f;
        float g = (float)((cls * 59) % 100) / 100.0f;
        draw_box_width(f->im, to_pixel(b->x - b->w / 2, w),
                       to_pixel(b->y - b->h / 2, h),
                       to_pixel(b->x + b->w / 2, w),
                       to_pixel(b->y + b->h / 2, h), 2, r, g, 1.0f - r);
    }
    struct rgb8 out = {w, h, malloc((size_t)w * h * 3)};
    if (out.px == NULL) {
        snprintf(f->err, sizeof f->err, "out of memory for the picture");
        rc = -1;
    } else {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    float v = f->im.data[(size_t)c * w * h + (size_t)y * w + x];
                    out.px[((size_t)y * w + x) * 3 + c] =
                        (unsigned char)(v >= 1.0f  ? 255
                                        : v > 0.0f ? v * 255.0f + 0.5f
                                                   : 0);
                }
        rc = codec_encode(&out, stage_cfg.quality, &f->jpeg, &f->jpeg_len,
                          f->err, sizeof f->err);
        codec_free(&out);
    }
    if (rc == 0 && stage_cfg.image_dir != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/frame_%06llu.jpg", stage_cfg.image_dir,
                 (unsigned long long)f->id);
        FILE *o = fopen(path, "wb");
        if (o == NULL || fwrite(f->jpeg, 1, f->jpeg_len, o) != f->jpeg_len) {
            snprintf(f->err, sizeof f->err, "cannot write %.200s", path);
            rc = -1;
        }
        if (o != NULL && fclose(o) != 0 && rc == 0) {
            snprintf(f->err, sizeof f->err, "cannot write %.200s", path);
            rc = -1;
        }
    }
    STAGEPROF_ARG_INT(span, "jpeg_bytes", f->jpeg_len);
    stage_clock_stop(&clk);
    return rc;
}

/* Serialisation ----------------------------------------------------------- */

void text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->oom ? 0
                       : vsnprintf(t->p ? t->p + t->len : NULL,
                                   t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (t->oom || n < 0)
            return;
        if (t->p != NULL && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->oom = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A JSON string: quotes, backslashes and control characters escaped. */
void text_add_str(struct text *t, const char *s)
{
    text_add(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            text_add(t, "\\%c", c);
        else if (c < 0x20)
            text_add(t, "\\u%04x", c);
        else
            text_add(t, "%c", c);
    }
    text_add(t, "\"");
}

int frame_answer_add(struct text *t, const struct frame *f, int class_ids)
{
    char buf[64];
    text_add(t, "\"width\":%d,\"height\":%d,\"detections\":[", f->im.w,
             f->im.h);
    int kept = 0;
    for (int i = 0; i < f->ndets; i++) {
        int cls = 0;
        float s = best_score(&f->dets[i], f->dets[i].classes, &cls);
        if (s <= 0.0f)
            continue;
        const box *b = &f->dets[i].bbox;
        text_add(t, "%s{\"label\":", kept++ ? "," : "");
        text_add_str(t, labels_get(stage_cfg.det_labels, cls, buf, sizeof buf));
        if (class_ids)
            text_add(t, ",\"class\":%d", cls);
        text_add(t, ",\"score\":%.4f,\"box\":[%.4f,%.4f,%.4f,%.4f]}", s, b->x,
                 b->y, b->w, b->h);
    }
    text_add(t, "],\"crops\":[");
    for (int i = 0; i < f->ncrops; i++) {
        const struct crop_result *r = &f->crops[i];
        /* The box's place in the "detections" list written above. */
        int at = 0, cls = 0;
        for (int j = 0; j < r->det; j++)
            at += best_score(&f->dets[j], f->dets[j].classes, &cls) > 0.0f;
        text_add(t, "%s{\"detection\":%d,\"label\":", i ? "," : "", at);
        text_add_str(
            t, labels_get(stage_cfg.cls_labels, r->label, buf, sizeof buf));
        if (class_ids)
            text_add(t, ",\"class\":%d", r->label);
        text_add(t, ",\"score\":%.4f}", (double)r->score);
    }
    text_add(t, "]");
    return kept;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* The frame's answer as one JSON line, appended to the output. */
int stage_serialize(struct frame *f)
{
    STAGEPROF_SCOPE(span, "serialize", "serve");
    struct stage_clock clk = stage_clock_start(STAGE_SERIALIZE);
    struct text t = {0};
    const char *base = strrchr(f->path, '/');
    text_add(&t, "{\"frame\":%llu,\"image\":", (unsigned long long)f->id);
    text_add_str(&t, base ? base + 1 : f->path);
    text_add(&t, ",");
    int kept = frame_answer_add(&t, f, 0);
    text_add(&t, ",\"jpeg_bytes\":%zu}\n", f->jpeg_len);
    int rc = 0;
    if (t.oom) {
        snprintf(f->err, sizeof f->err, "out of memory for the answer");
        rc = -1;
    } else {
        pthread_mutex_lock(&out_lock);
        if (fwrite(t.p, 1, t.len, stage_cfg.out) != t.len) {
            snprintf(f->err, sizeof f->err, "cannot write the answer");
            rc = -1;
        }
        pthread_mutex_unlock(&out_lock);
    }
    free(t.p);
    f->kept = kept;
    STAGEPROF_ARG_INT(span, "detections", kept);
    stage_clock_stop(&clk);
    return rc;
}

void frame_release(struct frame *f)
{
    if (f == NULL)
        return;
    free(f->file);
    codec_free(&f->rgb);
    if (f->im.data != NULL)
        free_image(f->im);
    if (f->input.data != NULL)
        free_image(f->input);
    if (f->dets != NULL)
        free_detections(f->dets, f->ndets);
    for (int k = 0; k < f->nbest; k++)
        if (f->crop[k].data != NULL)
            free_image(f->crop[k]);
    free(f->jpeg);
    free(f);
}

/* Models ------------------------------------------------------------------ */

/*
 * darknet ends the process on a file it cannot open or a config that does
 * not start with a [net] section; check both first, so the user gets a
 * clear message and status 1 instead.
 */
static int check_model_file(const char *path, int is_cfg, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    int ok = !is_cfg;
    char line[256];
    while (is_cfg && fgets(line, sizeof line, f) != NULL) {
        char *s = line + strspn(line, " \t\r\n");
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        ok = strncmp(s, "[net]", 5) == 0 || strncmp(s, "[network]", 9) == 0;
        break;
    }
    fclose(f);
    if (!ok)
        snprintf(err, errlen, "%s: not a darknet config (no [net] section)",
                 path);
    return ok ? 0 : -1;
}

/* Make random batch-norm statistics neutral; see the top of the file. */
static void fix_batchnorm(network *net)
{
    for (int i = 0; i < net->n; i++) {
        layer *l = &net->layers[i];
        int n = l->type == CONVOLUTIONAL ? l->n
                : l->type == CONNECTED   ? l->outputs
                : l->type == BATCHNORM   ? l->c
                                         : 0;
        if (!l->batch_normalize || l->rolling_variance == NULL)
            continue;
        for (int j = 0; j < n; j++) {
            l->rolling_variance[j] = 1.0f;
            l->rolling_mean[j] = 0.0f;
        }
    }
}

static network *load_one(const char *cfg, const char *weights, char *err,
                         size_t errlen)
{
    if (check_model_file(cfg, 1, err, errlen) != 0 ||
        (weights != NULL && check_model_file(weights, 0, err, errlen) != 0))
        return NULL;
    /* The same seed for every copy: all workers get the same weights. */
    srand(1);
    network *net = load_network((char *)cfg, (char *)weights, 0);
    if (net == NULL || net->n < 1 || net->outputs < 1) {
        snprintf(err, errlen, "%s: darknet built no network", cfg);
        return NULL;
    }
    set_batch_network(net, 1);
    if (weights == NULL)
        fix_batchnorm(net);
    return net;
}

int models_load(struct models *m, const char *det_cfg, const char *det_weights,
                const char *cls_cfg, const char *cls_weights, int input,
                char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->det = load_one(det_cfg, det_weights, err, errlen);
    if (m->det == NULL)
        return -1;
    layer out = m->det->layers[m->det->n - 1];
    if (out.type != YOLO && out.type != REGION && out.type != DETECTION) {
        snprintf(err, errlen,
                 "%s: not a detector (its last layer is no "
                 "yolo, region or detection layer)",
                 det_cfg);
        goto fail;
    }
    m->classes = out.classes;
    if (input > 0 && (input != m->det->w || input != m->det->h))
        resize_network(m->det, input, input);
    m->cls = load_one(cls_cfg, cls_weights, err, errlen);
    if (m->cls == NULL)
        goto fail;
    return 0;
fail:
    models_free(m);
    return -1;
}

void models_free(struct models *m)
{
    if (m->det != NULL)
        free_network(m->det);
    if (m->cls != NULL)
        free_network(m->cls);
    m->det = m->cls = NULL;
}

/* Labels ------------------------------------------------------------------ */

void labels_load(struct labels *l, const char *path)
{
    memset(l, 0, sizeof *l);
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f == NULL)
        return;
    char line[256];
    int cap = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (l->count == cap) {
            int ncap = cap ? cap * 2 : 128;
            char **p = realloc(l->names, sizeof *p * (size_t)ncap);
            if (p == NULL)
                break;
            l->names = p;
            cap = ncap;
        }
        if ((l->names[l->count] = strdup(line)) == NULL)
            break;
        l->count++;
    }
    fclose(f);
}

void labels_free(struct labels *l)
{
    for (int i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

const char *labels_get(const struct labels *l, int i, char *buf, size_t len)
{
    if (l != NULL && i >= 0 && i < l->count)
        return l->names[i];
    snprintf(buf, len, "class_%d", i);
    return buf;
}
