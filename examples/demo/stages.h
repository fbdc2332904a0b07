/*
 * stages.h - the demo's model and the work of each pipeline stage.
 *
 * Every stage is one instrumented span doing real CPU work of its own cost
 * (stages.c); demo.c moves frames between threads and owns the runs, flows
 * and counters. A stage function touches only its frame (and the model,
 * read-only after load_model()), so any thread may run it.
 */
#ifndef DEMO_STAGES_H
#define DEMO_STAGES_H

#include <stdint.h>

#define IMG_W 128 /* decoded frame: 8-bit RGB, twice the input */
#define IMG_H 128
#define ROWS 64       /* network input: 64 rows of 64 RGB pixels */
#define FEAT (64 * 3) /* features per row */
#define HIDDEN 320    /* width of both hidden layers */
#define OUTS 20       /* per row: 4 candidate boxes of score, x, y, w, h */
#define NCAND (ROWS * OUTS / 5)

struct box {
    float score, x, y, w, h;
};

struct frame {
    uint64_t id; /* frame number, also the run id (nonzero) */
    unsigned char pixels[IMG_H][IMG_W][3];
    float input[ROWS][FEAT];
    float h1[HIDDEN], h2[HIDDEN]; /* one row's activations */
    float out[ROWS][OUTS];
    struct box cand[NCAND]; /* after NMS the kept boxes come first */
    int ndet;               /* boxes kept */
    char text[1024];        /* the serialized answer */
};

/* load_model - fill the weights ("load_model", engine); call once first. */
void load_model(void);

/*
 * decode - make f->pixels for frame f->id ("decode", data).
 * preprocess - downscale and normalise into f->input ("preprocess").
 * infer - three dense layers into f->out ("infer", compute): the most
 * expensive stage by design.
 * postprocess - boxes from f->out, sorted, NMS into f->cand and f->ndet
 * ("postprocess").
 * serialize - the answer as JSON text in f->text ("serialize", serve).
 */
void decode(struct frame *f);
void preprocess(struct frame *f);
void infer(struct frame *f);
void postprocess(struct frame *f);
void serialize(struct frame *f);

#endif /* DEMO_STAGES_H */
