/*
 * models.h - the models of the detection programs (detect_workflow and
 * detect_server): the settings that choose and use them, one copy per
 * worker loaded at start-up, and the labels of their classes.
 *
 * Both programs take these settings with the same flags, ranges and
 * meanings; each keeps its own defaults and environment variables, and
 * passes a variable's value on under the flag's name. Loading is start-up
 * work: the span "load_models" (category "engine") on the calling thread,
 * outside every run.
 */
#ifndef DETECT_MODELS_H
#define DETECT_MODELS_H

#include "stages.h"

#include <pthread.h>

/* The models, where they come from, and how their outputs are used. */
struct model_opts {
    const char *darknet_dir; /* darknet's cfg/ and data/ */
    const char *cfg;         /* detector config; NULL: the darknet_dir's */
    const char *weights;     /* detector weights; NULL: random weights */
    const char *cls_cfg;     /* crop classifier config; NULL: the dir's */
    const char *cls_weights; /* its weights; NULL: random weights */
    long input;              /* detector input side */
    long topk;               /* boxes cropped and classified per picture */
    double thresh;           /* detection score threshold */
    int verbose;             /* let darknet print its layer tables */
};

/*
 * model_opts_set - the setting of flag @what (without "--"): input, topk,
 * thresh, darknet-dir, cfg, weights, classifier-cfg, classifier-weights.
 * Returns 0, -1 when @v is bad for it, 1 when @what is none of these.
 */
int model_opts_set(struct model_opts *o, const char *what, const char *v);

/*
 * model_opts_apply - stage_cfg from @o (threshold, top-K; NMS at 0.45,
 * JPEG quality 80, no slow-down, no pictures saved), with the labels of
 * darknet's coco.names and imagenet.shortnames.list loaded into @det and
 * @cls (the caller frees them with labels_free). Before any thread starts.
 */
void model_opts_apply(const struct model_opts *o, struct labels *det,
                      struct labels *cls);

/* One worker thread and the models that only it uses. */
struct worker {
    pthread_t thread;
    int index; /* from 0: the thread is "worker-<index>" */
    struct models models;
};

/* worker_name_thread - name the calling thread after @w in the trace. */
void worker_name_thread(const struct worker *w);

/*
 * workers_load_models - a copy of @o's models for each of the @n workers
 * @w, in the span "load_models" (engine). darknet's layer tables go to
 * /dev/null unless o->verbose. Returns 0; or -1 after the message
 * "@prog: cannot load the models: <why>" on stderr, with the copies
 * loaded before the failure left for models_free.
 */
int workers_load_models(struct worker *w, int n, const struct model_opts *o,
                        const char *prog);

#endif
