/*
 * http.c - the HTTP endpoint; not built yet: it never serves, and says so.
 */
#include "http.h"

int stageprof__http_start(const struct conf *c)
{
    (void)c;
    stageprof__log(STAGEPROF_LOG_WARN, "the HTTP endpoint is not available");
    return STAGEPROF_EINVAL;
}

void stageprof__http_stop(void)
{
}

int stageprof__http_port(void)
{
    return 0;
}

int stageprof_http_get_port(void)
{
    return 0;
}

void stageprof__http_render(struct strbuf *sb)
{
    (void)sb;
}

int stageprof__http_parse_addr(const char *s, char *host, size_t len, int *port)
{
    (void)s;
    (void)host;
    (void)len;
    (void)port;
    return STAGEPROF_EINVAL;
}
