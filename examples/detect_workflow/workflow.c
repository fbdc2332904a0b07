/*
 * workflow.c - a computer-vision workflow on darknet, profiled by stageprof.
 *
 *   STAGEPROF_ENABLE=1 ./detect_workflow [--frames N] [--workers W] ...
 *
 *   main:     check_inputs, load_models (engine, outside every run);
 *             starts the threads, waits, prints the summary
 *   reader:   per frame: run begins; read (io), decode (data);
 *             queue_push --+ flow "frame_handoff"; queue depth counter
 *   worker-i: queue_pop <--+ adopts the frame's run;
 *             preprocess: letterbox + normalise      (preprocess)
 *             detect: yolov3-tiny                    (compute)
 *             postprocess: boxes, NMS, top-K         (postprocess)
 *             crop: the top-K boxes                  (preprocess)
 *             classify: tiny.cfg on each crop        (compute)
 *             visualize: boxes drawn, JPEG encoded   (visualize)
 *             serialize: one JSON line per frame     (serve)
 *             run ends
 *
 * Each worker has its own copy of both models (darknet networks are not
 * shared between threads). Settings come from flags, or from DETECT_*
 * environment variables so that experiment tools can vary them; a flag
 * wins over the variable. Exit status: 0 done, 1 failure (a frame or the
 * set-up failed), 2 bad usage.
 *
 * What examples/detect_server does the same way is shared with it: the
 * stages (stages.c), the queue (handoff.c), the model settings, loading
 * and labels (models.c) and the parsing of flags and variables
 * (settings.c).
 */
#include "handoff.h"
#include "models.h"
#include "settings.h"
#include "stages.h"

#include <stageprof.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define QUEUE_CAP 4
#define MAX_WORKERS 64
#define MAX_IMAGES 1024
#define PROG "detect_workflow"

static const char *const default_images[] = {"dog.jpg",     "eagle.jpg",
                                             "giraffe.jpg", "horses.jpg",
                                             "kite.jpg",    "person.jpg"};

static struct options {
    long frames, workers;
    int slow_stage;
    long slow_pct;
    struct model_opts m;
    const char *out_dir, *summary_json;
    int save_images;
    char *images[MAX_IMAGES]; /* malloc'd paths */
    int nimages;
} opt = {.frames = 24,
         .workers = 2,
         .slow_stage = -1,
         .m = {.darknet_dir = "/usr/share/darknet",
               .input = 416,
               .topk = 3,
               .thresh = 0.5},
         .out_dir = "detect_output"};

/* Queue ------------------------------------------------------------------- */

/* Bounded FIFO of frames; closed by the reader after the last one. */
static void *queue_slots[QUEUE_CAP];
static struct handoff queue = {.lock = PTHREAD_MUTEX_INITIALIZER,
                               .not_empty = PTHREAD_COND_INITIALIZER,
                               .not_full = PTHREAD_COND_INITIALIZER,
                               .items = queue_slots,
                               .cap = QUEUE_CAP};

/* The flow begins inside the span that hands the frame over. */
static void queue_push(struct frame *f)
{
    STAGEPROF_SCOPE(span, "queue_push", "queue");
    struct stage_clock clk = stage_clock_start(STAGE_QUEUE_PUSH);
    STAGEPROF_FLOW_BEGIN("frame_handoff", f->id);
    pthread_mutex_lock(&queue.lock);
    while (queue.count == queue.cap)
        pthread_cond_wait(&queue.not_full, &queue.lock);
    handoff_put(&queue, f);
    pthread_mutex_unlock(&queue.lock);
    stage_clock_stop(&clk);
}

/*
 * A frame taken off the queue by a worker (handoff_pop: the wait is in the
 * span "queue_pop", which shows starved workers, but in no run): the
 * frame's run is adopted once the frame is in hand, and the flow ends.
 */
static void adopt_frame(void *item)
{
    const struct frame *f = item;
    STAGEPROF_RUN_SET(f->id);
    STAGEPROF_FLOW_END("frame_handoff", f->id);
}

/* Threads ----------------------------------------------------------------- */

static pthread_mutex_t totals_lock = PTHREAD_MUTEX_INITIALIZER;
static long done_frames, failed_frames, total_detections, total_crops;

static void frame_failed(const struct frame *f)
{
    fprintf(stderr, PROG ": frame %llu (%s): %s\n", (unsigned long long)f->id,
            f->path, f->err);
    pthread_mutex_lock(&totals_lock);
    failed_frames++;
    pthread_mutex_unlock(&totals_lock);
}

static void *reader_main(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("reader");
    stageprof_thread_set_sort_index(1);
    for (long i = 1; i <= opt.frames; i++) {
        struct frame *f = calloc(1, sizeof *f);
        if (f == NULL) {
            fprintf(stderr, PROG ": out of memory for frame %ld\n", i);
            pthread_mutex_lock(&totals_lock);
            failed_frames += opt.frames - i + 1;
            pthread_mutex_unlock(&totals_lock);
            break;
        }
        f->id = (uint64_t)i;
        f->path = opt.images[(i - 1) % opt.nimages];
        STAGEPROF_RUN_BEGIN("frame", f->id);
        if (stage_read(f) != 0 || stage_decode(f) != 0) {
            frame_failed(f);
            STAGEPROF_RUN_END("frame", f->id);
            frame_release(f);
            continue;
        }
        queue_push(f);
        /* The frame belongs to a worker now: stop charging it here. */
        STAGEPROF_RUN_SET(0);
    }
    handoff_close(&queue);
    return NULL;
}

static int process(struct frame *f, const struct models *m)
{
    if (stage_preprocess(f, m) != 0 || stage_detect(f, m) != 0 ||
        stage_postprocess(f, m) != 0 || stage_crop(f, m) != 0)
        return -1;
    for (int i = 0; i < f->nbest; i++)
        if (stage_classify(f, m, i) != 0)
            return -1;
    return stage_visualize(f) != 0 || stage_serialize(f) != 0 ? -1 : 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    worker_name_thread(w);
    struct frame *f;
    while ((f = handoff_pop(&queue, adopt_frame)) != NULL) {
        if (process(f, &w->models) != 0) {
            frame_failed(f);
        } else {
            pthread_mutex_lock(&totals_lock);
            done_frames++;
            total_crops += f->ncrops;
            total_detections += f->kept;
            pthread_mutex_unlock(&totals_lock);
        }
        /* Ends the frame's run and clears this thread's current run. */
        STAGEPROF_RUN_END("frame", f->id);
        frame_release(f);
    }
    return NULL;
}

/* Start-up ---------------------------------------------------------------- */

/* Every input picture is read and decoded once, so a bad one stops the
 * workflow before it starts instead of failing frame after frame. */
static int check_inputs(void)
{
    STAGEPROF_SCOPE(span, "check_inputs", "engine");
    for (int i = 0; i < opt.nimages; i++) {
        struct frame f = {.path = opt.images[i]};
        int rc = codec_read_file(f.path, 64u << 20, &f.file, &f.file_len, f.err,
                                 sizeof f.err);
        if (rc == 0)
            rc = codec_decode(f.file, f.file_len, &f.rgb, f.err, sizeof f.err);
        free(f.file);
        codec_free(&f.rgb);
        if (rc != 0) {
            fprintf(stderr, PROG ": input %s: %s\n", f.path, f.err);
            return -1;
        }
    }
    return 0;
}

/* Options ----------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(
        to,
        "usage: " PROG " [options]\n"
        "  --frames N          frames to process, 1..1000000 (DETECT_FRAMES, "
        "default 24)\n"
        "  --workers W         worker threads, each with its own models, "
        "1..64\n"
        "                      (DETECT_WORKERS, default 2)\n"
        "  --input S           detector input side, a multiple of 32 in "
        "64..1024\n"
        "                      (DETECT_INPUT, default 416)\n"
        "  --topk K            boxes cropped and classified per frame, 0..32\n"
        "                      (DETECT_TOPK, default 3)\n"
        "  --slow STAGE:PCT    make STAGE slower by PCT%% (1..1000) of its own "
        "CPU time,\n"
        "                      with busy work (DETECT_SLOW)\n"
        "  --images A,B,...    JPEG pictures, repeated to N frames (default: "
        "darknet's\n"
        "                      samples dog, eagle, giraffe, horses, kite, "
        "person)\n"
        "  --darknet-dir DIR   darknet's cfg/ and data/ (default "
        "/usr/share/darknet)\n"
        "  --cfg FILE          detector config (default "
        "DIR/cfg/yolov3-tiny.cfg)\n"
        "  --weights FILE      detector weights (default: random weights)\n"
        "  --classifier-cfg FILE      crop classifier config (default "
        "DIR/cfg/tiny.cfg)\n"
        "  --classifier-weights FILE  its weights (default: random "
        "weights)\n"
        "  --thresh T          detection score threshold, 0..1 (default "
        "0.5)\n"
        "  --out DIR           answers go to DIR/detections.jsonl (default "
        "detect_output)\n"
        "  --save-images       also write each annotated picture into DIR\n"
        "  --summary-json FILE the run's own figures as JSON\n"
        "  --verbose           let darknet print its layer tables\n"
        "Stages: read decode queue_push queue_pop preprocess detect "
        "postprocess crop\n"
        "        classify visualize serialize\n"
        "Set STAGEPROF_ENABLE=1 to write a trace (into STAGEPROF_DIR, "
        "default\n./inference_profiling).\n");
}

static int parse_images(const char *list)
{
    for (int i = 0; i < opt.nimages; i++)
        free(opt.images[i]);
    opt.nimages = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == 0 || opt.nimages == MAX_IMAGES)
            return -1;
        if ((opt.images[opt.nimages] = strndup(p, n)) == NULL)
            return -1;
        opt.nimages++;
        p += n + (p[n] == ',');
    }
    return opt.nimages > 0 ? 0 : -1;
}

/* One setting from flag or variable @what; 0, or -1 when @v is bad. */
static int set_option(const char *what, const char *v)
{
    if (strcmp(what, "frames") == 0 || strcmp(what, "DETECT_FRAMES") == 0)
        return (opt.frames = (long)settings_number(v, 1, 1000000)) < 0 ? -1 : 0;
    if (strcmp(what, "workers") == 0 || strcmp(what, "DETECT_WORKERS") == 0)
        return (opt.workers = (long)settings_number(v, 1, MAX_WORKERS)) < 0 ? -1
                                                                            : 0;
    if (strcmp(what, "slow") == 0 || strcmp(what, "DETECT_SLOW") == 0)
        return settings_slow(v, stage_names, STAGE_COUNT, &opt.slow_stage,
                             &opt.slow_pct);
    if (strcmp(what, "images") == 0)
        return parse_images(v);
    const char **dst = strcmp(what, "out") == 0            ? &opt.out_dir
                       : strcmp(what, "summary-json") == 0 ? &opt.summary_json
                                                           : NULL;
    if (dst != NULL) {
        if (*v == '\0')
            return -1;
        *dst = v;
        return 0;
    }
    /* The model settings; of their variables, these two. */
    if (strcmp(what, "DETECT_INPUT") == 0)
        what = "input";
    else if (strcmp(what, "DETECT_TOPK") == 0)
        what = "topk";
    return model_opts_set(&opt.m, what, v) == 0 ? 0 : -1;
}

static int set_switch(const char *flag)
{
    if (strcmp(flag, "--save-images") == 0)
        opt.save_images = 1;
    else if (strcmp(flag, "--verbose") == 0)
        opt.m.verbose = 1;
    else
        return 0;
    return 1;
}

/* Variables first, flags after: a flag wins. 0, or the exit status. */
static int parse_args(int argc, char **argv)
{
    static const char *const vars[] = {"DETECT_FRAMES", "DETECT_WORKERS",
                                       "DETECT_INPUT", "DETECT_TOPK",
                                       "DETECT_SLOW"};
    static const struct settings settings = {
        PROG,       vars,       sizeof vars / sizeof vars[0],
        set_option, set_switch, usage};
    int status = settings_parse(&settings, argc, argv);
    if (status != 0)
        return status;
    if (opt.nimages == 0) {
        for (size_t i = 0; i < sizeof default_images / sizeof *default_images;
             i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/data/%s", opt.m.darknet_dir,
                     default_images[i]);
            if ((opt.images[opt.nimages] = strdup(path)) == NULL)
                return 1;
            opt.nimages++;
        }
    }
    return 0;
}

/* Summary ----------------------------------------------------------------- */

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct figures {
    uint64_t load_ns, wall_ns, cpu_ns;
    int workers;
    const char *trace; /* NULL when no trace was written */
    char answers[4096];
};

static void print_summary(const struct figures *fg)
{
    printf(PROG
           ": %ld frames (%ld failed), %d workers, input %ldx%ld, "
           "top-%ld crops: %.2f s, %.2f frames/s (models loaded in %.2f s)\n",
           done_frames, failed_frames, fg->workers, opt.m.input, opt.m.input,
           opt.m.topk, seconds(fg->wall_ns),
           fg->wall_ns ? (double)done_frames / seconds(fg->wall_ns) : 0.0,
           seconds(fg->load_ns));
    printf(PROG ": %ld detections, %ld crops classified; answers in %s\n",
           total_detections, total_crops, fg->answers);
    if (opt.slow_stage >= 0)
        printf(PROG ": %s slowed down by %ld%% (busy work)\n",
               stage_names[opt.slow_stage], opt.slow_pct);
    struct stage_totals st[STAGE_COUNT];
    uint64_t all = 0;
    for (int i = 0; i < STAGE_COUNT; i++) {
        stage_totals_get(i, &st[i]);
        all += st[i].wall_ns;
    }
    printf(PROG ": own timings (clocks around each stage call; the queue "
                "stages are waits):\n");
    printf("  %-12s %-12s %7s %10s %10s %10s %7s\n", "stage", "category",
           "calls", "mean ms", "total s", "cpu s", "share");
    for (int i = 0; i < STAGE_COUNT; i++)
        printf("  %-12s %-12s %7llu %10.2f %10.3f %10.3f %6.1f%%\n",
               stage_names[i], stage_cats[i], (unsigned long long)st[i].calls,
               st[i].calls ? (double)st[i].wall_ns / (double)st[i].calls / 1e6
                           : 0.0,
               seconds(st[i].wall_ns), seconds(st[i].cpu_ns),
               all ? 100.0 * (double)st[i].wall_ns / (double)all : 0.0);
}

static int write_summary_json(const struct figures *fg)
{
    struct text t = {0};
    text_add(&t,
             "{\"frames\":%ld,\"frames_failed\":%ld,\"workers\":%d,"
             "\"input\":%ld,\"topk\":%ld,\"load_ns\":%llu,\"wall_ns\":%llu,"
             "\"cpu_ns\":%llu,\"detections\":%ld,\"crops\":%ld,\"slow\":",
             done_frames, failed_frames, fg->workers, opt.m.input, opt.m.topk,
             (unsigned long long)fg->load_ns, (unsigned long long)fg->wall_ns,
             (unsigned long long)fg->cpu_ns, total_detections, total_crops);
    if (opt.slow_stage >= 0)
        text_add(&t, "{\"stage\":\"%s\",\"pct\":%ld}",
                 stage_names[opt.slow_stage], opt.slow_pct);
    else
        text_add(&t, "null");
    text_add(&t, ",\"trace\":");
    if (fg->trace != NULL)
        text_add_str(&t, fg->trace);
    else
        text_add(&t, "null");
    text_add(&t, ",\"stages\":[");
    for (int i = 0; i < STAGE_COUNT; i++) {
        struct stage_totals st;
        stage_totals_get(i, &st);
        text_add(&t,
                 "%s{\"name\":\"%s\",\"category\":\"%s\",\"calls\":%llu,"
                 "\"total_ns\":%llu,\"cpu_ns\":%llu,\"busy_cpu_ns\":%llu}",
                 i ? "," : "", stage_names[i], stage_cats[i],
                 (unsigned long long)st.calls, (unsigned long long)st.wall_ns,
                 (unsigned long long)st.cpu_ns,
                 (unsigned long long)st.busy_cpu_ns);
    }
    text_add(&t, "]}\n");
    FILE *f = t.oom ? NULL : fopen(opt.summary_json, "w");
    int ok = f != NULL && fwrite(t.p, 1, t.len, f) == t.len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    free(t.p);
    if (!ok)
        fprintf(stderr, PROG ": cannot write %s\n", opt.summary_json);
    return ok ? 0 : -1;
}

/* Main -------------------------------------------------------------------- */

static int open_outputs(struct figures *fg)
{
    if (mkdir(opt.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, PROG ": cannot create %s: %s\n", opt.out_dir,
                strerror(errno));
        return -1;
    }
    snprintf(fg->answers, sizeof fg->answers, "%s/detections.jsonl",
             opt.out_dir);
    stage_cfg.out = fopen(fg->answers, "w");
    if (stage_cfg.out == NULL) {
        fprintf(stderr, PROG ": cannot open %s: %s\n", fg->answers,
                strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int status = parse_args(argc, argv);
    if (status != 0)
        return status;

    stageprof_process_set_name(PROG);
    stageprof_thread_set_name("main");
    struct figures fg = {.workers = (int)opt.workers};
    static struct worker workers[MAX_WORKERS];
    struct labels det_labels, cls_labels;
    model_opts_apply(&opt.m, &det_labels, &cls_labels);
    stage_cfg.slow_stage = opt.slow_stage;
    stage_cfg.slow_pct = (int)opt.slow_pct;
    stage_cfg.image_dir = opt.save_images ? opt.out_dir : NULL;

    int loaded = 0;
    uint64_t t0 = stage_now_ns();
    status = 1;
    if (open_outputs(&fg) != 0)
        goto out;
    for (; loaded < opt.workers; loaded++)
        workers[loaded].index = loaded;
    if (check_inputs() != 0 ||
        workers_load_models(workers, loaded, &opt.m, PROG) != 0)
        goto out;
    stage_cfg.crop_side = workers[0].models.cls->w;
    fg.load_ns = stage_now_ns() - t0;

    t0 = stage_now_ns();
    uint64_t cpu0 = cpu_now_ns();
    pthread_t reader;
    int started = 0;
    while (started < opt.workers &&
           pthread_create(&workers[started].thread, NULL, worker_main,
                          &workers[started]) == 0)
        started++;
    if (started == 0 || pthread_create(&reader, NULL, reader_main, NULL)) {
        fprintf(stderr, PROG ": cannot start threads\n");
        /* Started workers wait on the queue: close it to let them go. */
        handoff_close(&queue);
        for (int i = 0; i < started; i++)
            pthread_join(workers[i].thread, NULL);
        goto out;
    }
    pthread_join(reader, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    fg.wall_ns = stage_now_ns() - t0;
    fg.cpu_ns = cpu_now_ns() - cpu0;
    fg.workers = started;
    status = failed_frames > 0 ? 1 : 0;

    if (fclose(stage_cfg.out) != 0) {
        fprintf(stderr, PROG ": cannot write %s\n", fg.answers);
        status = 1;
    }
    stage_cfg.out = NULL;
    char trace[4096];
    int rc = 0;
    if (stageprof_is_tracing()) {
        rc = stageprof_stop();
        if (rc == 0)
            rc = stageprof_get_last_path(trace, sizeof trace);
        if (rc == 0)
            fg.trace = trace;
    }
    print_summary(&fg);
    if (opt.summary_json != NULL && write_summary_json(&fg) != 0)
        status = 1;
    if (rc != 0) {
        fprintf(stderr, PROG ": trace not written: %s\n",
                stageprof_strerror(rc));
        status = 1;
    } else if (fg.trace != NULL) {
        printf(PROG ": trace written to %s\n", fg.trace);
        printf(PROG
               ": open it in https://ui.perfetto.dev or chrome://tracing\n");
    } else {
        printf(PROG ": tracing is off (STAGEPROF_ENABLE=1 turns it on)\n");
    }
out:
    if (stage_cfg.out != NULL)
        fclose(stage_cfg.out);
    for (int i = 0; i < loaded; i++)
        models_free(&workers[i].models);
    labels_free(&det_labels);
    labels_free(&cls_labels);
    for (int i = 0; i < opt.nimages; i++)
        free(opt.images[i]);
    return status;
}
