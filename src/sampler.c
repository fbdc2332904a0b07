/*
 * sampler.c - the resource sampler; not built yet: it starts no thread and
 * renders no metrics.
 */
#include "sampler.h"

int stageprof__sampler_start(const struct conf *c)
{
    (void)c;
    return 0;
}

void stageprof__sampler_stop(void)
{
}

void stageprof__sampler_render(struct strbuf *sb)
{
    (void)sb;
}
