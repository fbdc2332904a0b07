/*
 * models.c - settings, per-worker copies and labels of the detection
 * programs' models; see models.h. The models themselves (darknet's
 * networks, made usable without weight files) are stages.c's models_load.
 */
#include "models.h"

#include "settings.h"

#include <stageprof.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int model_opts_set(struct model_opts *o, const char *what, const char *v)
{
    long long n;
    if (strcmp(what, "input") == 0) {
        n = settings_number(v, 64, 1024);
        return (o->input = (long)n) < 0 || n % 32 != 0 ? -1 : 0;
    }
    if (strcmp(what, "topk") == 0)
        return (o->topk = (long)settings_number(v, 0, MAX_TOPK)) < 0 ? -1 : 0;
    if (strcmp(what, "thresh") == 0)
        return settings_fraction(v, &o->thresh);
    const char **dst = strcmp(what, "darknet-dir") == 0      ? &o->darknet_dir
                       : strcmp(what, "cfg") == 0            ? &o->cfg
                       : strcmp(what, "weights") == 0        ? &o->weights
                       : strcmp(what, "classifier-cfg") == 0 ? &o->cls_cfg
                       : strcmp(what, "classifier-weights") == 0
                           ? &o->cls_weights
                           : NULL;
    if (dst == NULL)
        return 1;
    if (*v == '\0')
        return -1;
    *dst = v;
    return 0;
}

void model_opts_apply(const struct model_opts *o, struct labels *det,
                      struct labels *cls)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/coco.names", o->darknet_dir);
    labels_load(det, path);
    snprintf(path, sizeof path, "%s/data/imagenet.shortnames.list",
             o->darknet_dir);
    labels_load(cls, path);
    stage_cfg = (struct stage_config){
        .thresh = (float)o->thresh,
        .nms = 0.45f,
        .topk = (int)o->topk,
        .quality = 80,
        .slow_stage = -1,
        .det_labels = det,
        .cls_labels = cls,
    };
}

void worker_name_thread(const struct worker *w)
{
    char name[32];
    snprintf(name, sizeof name, "worker-%d", w->index);
    stageprof_thread_set_name(name);
    stageprof_thread_set_sort_index(2 + w->index);
}

/*
 * darknet prints a table of layers to stderr while it builds a network:
 * sent to /dev/null unless @verbose. Returns the saved descriptor or -1.
 */
static int quiet_begin(int verbose)
{
    if (verbose)
        return -1;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0)
        dup2(null, 2);
    if (null >= 0)
        close(null);
    return saved;
}

static void quiet_end(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

int workers_load_models(struct worker *w, int n, const struct model_opts *o,
                        const char *prog)
{
    STAGEPROF_SCOPE(span, "load_models", "engine");
    char cfg[4096], cls_cfg[4096], err[512] = "";
    snprintf(cfg, sizeof cfg, "%s/cfg/yolov3-tiny.cfg", o->darknet_dir);
    snprintf(cls_cfg, sizeof cls_cfg, "%s/cfg/tiny.cfg", o->darknet_dir);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int saved = quiet_begin(o->verbose);
        rc = models_load(&w[i].models, o->cfg ? o->cfg : cfg, o->weights,
                         o->cls_cfg ? o->cls_cfg : cls_cfg, o->cls_weights,
                         (int)o->input, err, sizeof err);
        quiet_end(saved);
    }
    if (rc != 0)
        fprintf(stderr, "%s: cannot load the models: %s\n", prog, err);
    STAGEPROF_ARG_INT(span, "copies", n);
    return rc;
}
