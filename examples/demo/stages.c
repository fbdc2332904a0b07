/*
 * stages.c - the work of each stage of the demo pipeline (see stages.h).
 *
 * Plain C stand-ins for a real model, sized so that infer dominates and
 * the other stages differ in cost: decode synthesises an image,
 * preprocess downscales and normalises it, infer runs three dense layers,
 * postprocess sorts candidate boxes and suppresses overlaps, serialize
 * prints the result. Each function is one span; its category is the triage
 * bucket of the stage.
 */
#include "stages.h"

#include <stageprof.h>

#include <stdio.h>
#include <stdlib.h>

/* The model: written by load_model() before any other thread runs. */
static float w1[FEAT][HIDDEN], w2[HIDDEN][HIDDEN], w3[HIDDEN][OUTS];

/* Deterministic pseudo-random numbers (xorshift32); @s is never 0. */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Uniform weights in [-scale, scale]. */
static void fill(float *w, size_t n, float scale, uint32_t *s)
{
    for (size_t i = 0; i < n; i++)
        w[i] = ((float)(rnd(s) % 2001) - 1000.0f) * scale / 1000.0f;
}

void load_model(void)
{
    STAGEPROF_SCOPE(span, "load_model", "engine");
    uint32_t s = 12345;
    fill(&w1[0][0], sizeof w1 / sizeof(float), 0.08f, &s);
    fill(&w2[0][0], sizeof w2 / sizeof(float), 0.06f, &s);
    fill(&w3[0][0], sizeof w3 / sizeof(float), 0.3f, &s);
    STAGEPROF_ARG_INT(span, "parameters",
                      (sizeof w1 + sizeof w2 + sizeof w3) / sizeof(float));
}

/* "Decode" a frame: a moving gradient plus sensor noise. */
void decode(struct frame *f)
{
    STAGEPROF_SCOPE(span, "decode", "data");
    STAGEPROF_ARG_INT(span, "frame", f->id);
    uint32_t s = (uint32_t)f->id * 2654435761u + 1;
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++)
            for (int c = 0; c < 3; c++)
                f->pixels[y][x][c] =
                    (unsigned char)(x * 2 + y + c * 40 + (int)f->id * 3 +
                                    (int)(rnd(&s) & 15));
}

/* 2x2 box downscale to the network input, then per-channel normalising. */
void preprocess(struct frame *f)
{
    STAGEPROF_SCOPE(span, "preprocess", "preprocess");
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float stdv[3] = {0.229f, 0.224f, 0.225f};
    for (int y = 0; y < ROWS; y++)
        for (int x = 0; x < FEAT / 3; x++)
            for (int c = 0; c < 3; c++) {
                int sum = f->pixels[2 * y][2 * x][c] +
                          f->pixels[2 * y][2 * x + 1][c] +
                          f->pixels[2 * y + 1][2 * x][c] +
                          f->pixels[2 * y + 1][2 * x + 1][c];
                float v = (float)sum / (4 * 255.0f);
                f->input[y][x * 3 + c] = (v - mean[c]) / stdv[c];
            }
}

/* out = in x w (w is n_in rows of n_out), with an optional ReLU. */
static void dense(const float *in, int n_in, const float *w, int n_out,
                  float *out, int relu)
{
    for (int j = 0; j < n_out; j++)
        out[j] = 0;
    /* i outer, j inner: both w's row and out are walked contiguously. */
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < n_out; j++)
            out[j] += in[i] * w[i * n_out + j];
    for (int j = 0; relu && j < n_out; j++)
        out[j] = out[j] > 0 ? out[j] : 0;
}

/* Three dense layers per row: by far the most expensive stage. */
void infer(struct frame *f)
{
    STAGEPROF_SCOPE(span, "infer", "compute");
    STAGEPROF_ARG_INT(span, "macs",
                      ROWS * (FEAT * HIDDEN + HIDDEN * HIDDEN + HIDDEN * OUTS));
    for (int r = 0; r < ROWS; r++) {
        dense(f->input[r], FEAT, &w1[0][0], HIDDEN, f->h1, 1);
        dense(f->h1, HIDDEN, &w2[0][0], HIDDEN, f->h2, 1);
        dense(f->h2, HIDDEN, &w3[0][0], OUTS, f->out[r], 0);
    }
}

static int by_score_desc(const void *a, const void *b)
{
    float x = ((const struct box *)a)->score;
    float y = ((const struct box *)b)->score;
    return (x < y) - (x > y);
}

static float overlap(float a0, float a1, float b0, float b1)
{
    float d = (a1 < b1 ? a1 : b1) - (a0 > b0 ? a0 : b0);
    return d > 0 ? d : 0;
}

/* Candidate boxes from the raw outputs, sorted by score, greedy NMS. */
void postprocess(struct frame *f)
{
    STAGEPROF_SCOPE(span, "postprocess", "postprocess");
    for (int i = 0; i < NCAND; i++) {
        const float *o = &f->out[i / 4][(i % 4) * 5];
        struct box b = {o[0], (float)(i % 16) * 4 + o[1], (float)(i / 16) * 4,
                        6 + o[3] * o[3], 6 + o[4] * o[4]};
        f->cand[i] = b;
    }
    qsort(f->cand, NCAND, sizeof f->cand[0], by_score_desc);
    int kept = 0;
    for (int i = 0; i < NCAND; i++) {
        const struct box *b = &f->cand[i];
        int keep = 1;
        for (int k = 0; k < kept && keep; k++) {
            const struct box *a = &f->cand[k];
            float inter = overlap(a->x, a->x + a->w, b->x, b->x + b->w) *
                          overlap(a->y, a->y + a->h, b->y, b->y + b->h);
            keep = inter <= 0.3f * (a->w * a->h + b->w * b->h - inter);
        }
        if (keep)
            f->cand[kept++] = *b;
    }
    f->ndet = kept;
    STAGEPROF_ARG_INT(span, "detections", kept);
}

/* The answer a server would send: the best boxes as JSON text. */
void serialize(struct frame *f)
{
    STAGEPROF_SCOPE(span, "serialize", "serve");
    size_t n =
        (size_t)snprintf(f->text, sizeof f->text, "{\"frame\":%llu,\"boxes\":[",
                         (unsigned long long)f->id);
    /* %.4g keeps every entry under 80 bytes, so the text cannot overflow. */
    for (int i = 0; i < f->ndet && n + 96 < sizeof f->text; i++)
        n += (size_t)snprintf(f->text + n, sizeof f->text - n,
                              "%s[%.4g,%.4g,%.4g,%.4g,%.4g]", i ? "," : "",
                              f->cand[i].x, f->cand[i].y, f->cand[i].w,
                              f->cand[i].h, f->cand[i].score);
    snprintf(f->text + n, sizeof f->text - n, "]}");
}
