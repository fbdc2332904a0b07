/*
 * http.h - the embedded HTTP endpoint (libmicrohttpd): /metrics, /healthz,
 * /capture (capture.c).
 *
 * Off unless the configuration names an address (STAGEPROF_HTTP). It runs on
 * its own thread; nothing on the recording path ever waits for it. Started
 * and stopped by core.c under stageprof__g.lock.
 */
#ifndef STAGEPROF_HTTP_H
#define STAGEPROF_HTTP_H

#include "internal.h"

struct strbuf;

/*
 * Start serving on @c->http with the token, connection cap and idle timeout
 * of @c. A bad address or a port that cannot be bound is logged (warning)
 * and leaves the endpoint off. Returns 0 or a STAGEPROF_E* code.
 */
int stageprof__http_start(const struct conf *c);
/* Stop serving and join the endpoint's threads; no-op when off. */
void stageprof__http_stop(void);
/* The bound TCP port, 0 when not serving. */
int stageprof__http_port(void);

/*
 * Append the endpoint's own metrics to @sb (text format 0.0.4): requests
 * answered by status code (counter, kept across restarts) and connections
 * open now (gauge). Called by stageprof__metrics_render, also from the
 * endpoint's thread; takes the endpoint's state lock briefly. Nothing is
 * appended in a build without the endpoint.
 */
void stageprof__http_render(struct strbuf *sb);

/*
 * fork() hook (see internal.h): @phase 0 before fork, 1 in the parent, 2 in
 * the child, where the server thread does not exist: the child closes its
 * copy of the listening socket and forgets the server without stopping it.
 * Phase 0 takes one short lock that is never held while waiting, so it may
 * come anywhere after stageprof__g.lock in the prepare handler.
 */
void stageprof__http_fork(int phase);

/*
 * Parse an endpoint address: "PORT" (127.0.0.1), "HOST:PORT" with an IPv4
 * address or a host name, "[V6]:PORT". Fills @host (NUL-terminated, @len
 * bytes) and @port (0..65535; 0 asks the kernel for a free port). Returns 0
 * or STAGEPROF_EINVAL. Pure, for tests.
 */
int stageprof__http_parse_addr(const char *s, char *host, size_t len,
                               int *port);

#endif /* STAGEPROF_HTTP_H */
