/*
 * stages.h - the stages of the detection workflow and their own timings.
 *
 * One function per stage, each one instrumented span of the category the
 * table below gives. A stage touches only its frame and the models of the
 * worker that runs it, so stages of different frames run in parallel on
 * different workers. Every stage also times itself with clock_gettime
 * into the table of own timings, independent of stageprof, so the
 * program's own account can be checked against the trace; and any one
 * stage can be made slower by a percentage of its own CPU time (busy work),
 * to demonstrate a regression.
 */
#ifndef DETECT_STAGES_H
#define DETECT_STAGES_H

#include "codec.h"

#include <darknet.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_TOPK 32

/* Stage, span name, category: one row per instrumented stage. */
#define DETECT_STAGES(X)                                                       \
    X(READ, "read", "io")                                                      \
    X(DECODE, "decode", "data")                                                \
    X(QUEUE_PUSH, "queue_push", "queue")                                       \
    X(QUEUE_POP, "queue_pop", "queue")                                         \
    X(PREPROCESS, "preprocess", "preprocess")                                  \
    X(DETECT, "detect", "compute")                                             \
    X(POSTPROCESS, "postprocess", "postprocess")                               \
    X(CROP, "crop", "preprocess")                                              \
    X(CLASSIFY, "classify", "compute")                                         \
    X(VISUALIZE, "visualize", "visualize")                                     \
    X(SERIALIZE, "serialize", "serve")

enum stage {
#define X(id, name, cat) STAGE_##id,
    DETECT_STAGES(X)
#undef X
        STAGE_COUNT
};

extern const char *const stage_names[STAGE_COUNT];
extern const char *const stage_cats[STAGE_COUNT];

/* The models of one worker: darknet networks are not shared by threads. */
struct models {
    network *det; /* detector, e.g. yolov3-tiny */
    network *cls; /* classifier run on each crop, e.g. tiny */
    int classes;  /* detector classes */
};

/* Labels of a model's classes, from a names file; NULL when none. */
struct labels {
    char **names;
    int count;
};

struct crop_result {
    int det;     /* index into the frame's detections */
    int label;   /* classifier's best class */
    float score; /* and its probability */
};

/* One frame on its way through the workflow; also its run. */
struct frame {
    uint64_t id;         /* frame number from 1, the run id */
    const char *path;    /* source image (borrowed from the options) */
    unsigned char *file; /* the file's bytes (read) */
    size_t file_len;
    struct rgb8 rgb; /* decoded picture (decode) */
    image im;        /* float planes of the picture (preprocess) */
    image input;     /* letterboxed network input (preprocess) */
    detection *dets; /* boxes after NMS (postprocess) */
    int ndets;
    int kept;           /* boxes with a score left after NMS (serialize) */
    int best[MAX_TOPK]; /* strongest boxes, strongest first */
    int nbest;
    image crop[MAX_TOPK]; /* their pixels at the classifier's size (crop) */
    struct crop_result crops[MAX_TOPK]; /* classifier on each (classify) */
    int ncrops;
    unsigned char *jpeg; /* annotated picture (visualize) */
    size_t jpeg_len;
    char err[256]; /* why the frame failed, when it did */
};

/* Settings the stages read; set once before any thread starts. */
struct stage_config {
    float thresh;          /* detection score threshold */
    float nms;             /* IoU above which NMS drops a box */
    int topk;              /* boxes cropped and classified per frame */
    int crop_side;         /* classifier input side */
    int quality;           /* JPEG quality of the annotated picture */
    int slow_stage;        /* stage made slower, or -1 */
    int slow_pct;          /* by this percentage of its own time */
    FILE *out;             /* JSON lines of answers */
    const char *image_dir; /* where annotated pictures go, or NULL */
    const struct labels *det_labels, *cls_labels;
};

extern struct stage_config stage_cfg;

/* Own timings: wall and thread CPU clocks around each stage call. */
struct stage_clock {
    int stage;
    uint64_t t0, cpu0;
};

struct stage_totals {
    uint64_t calls;
    uint64_t wall_ns;     /* wall time inside the stage */
    uint64_t cpu_ns;      /* CPU time of the calling threads in it */
    uint64_t busy_cpu_ns; /* of which the slow-down's busy work */
};

uint64_t stage_now_ns(void);
struct stage_clock stage_clock_start(int stage);
/*
 * stage_clock_stop - account the call. For the slowed-down stage it first
 * adds busy work worth slow_pct % of the CPU time the call took: CPU time,
 * not wall time, so that waiting for a core does not count as work.
 */
void stage_clock_stop(const struct stage_clock *c);
void stage_totals_get(int stage, struct stage_totals *t);

/* The stages. Each returns 0, or -1 with the reason in f->err. */
int stage_read(struct frame *f);
int stage_decode(struct frame *f);
int stage_preprocess(struct frame *f, const struct models *m);
int stage_detect(struct frame *f, const struct models *m);
int stage_postprocess(struct frame *f, const struct models *m);
int stage_crop(struct frame *f, const struct models *m);
int stage_classify(struct frame *f, const struct models *m, int i);
int stage_visualize(struct frame *f);
int stage_serialize(struct frame *f);

/* A growing text buffer; on allocation failure it stays short, oom set. */
struct text {
    char *p;
    size_t len, cap;
    int oom;
};

void text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* text_add_str - @s as a JSON string. */
void text_add_str(struct text *t, const char *s);

/*
 * frame_answer_add - the frame's answer into @t, as the members of a JSON
 * object without its braces: "width", "height", "detections" (label, and
 * the class number too when @class_ids, score, box) and "crops" (the
 * box's index in "detections", label, class number when @class_ids,
 * score). Boxes without a finite positive score are left out. Returns the
 * number of detections written. Reads only @f and stage_cfg's labels.
 */
int frame_answer_add(struct text *t, const struct frame *f, int class_ids);

/* frame_release - free what the stages attached; the frame itself too. */
void frame_release(struct frame *f);

/* Models: load (start-up work), free. fix_batchnorm: see stages.c. */
int models_load(struct models *m, const char *det_cfg, const char *det_weights,
                const char *cls_cfg, const char *cls_weights, int input,
                char *err, size_t errlen);
void models_free(struct models *m);

/* Names files: one label per line. A missing file gives no labels. */
void labels_load(struct labels *l, const char *path);
void labels_free(struct labels *l);
const char *labels_get(const struct labels *l, int i, char *buf, size_t len);

#endif
