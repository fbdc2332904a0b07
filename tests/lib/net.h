/*
 * net.h - what the endpoint's unit tests share: whether the library was
 * built with the endpoint, and a socket to it.
 */
#ifndef STAGEPROF_TEST_NET_H
#define STAGEPROF_TEST_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "helpers.h"
#include "http.h"

/* Whether the library has the endpoint: its render says something. */
static inline int http_built(void)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__http_render(&sb);
    int built = sb.len > 0;
    stageprof__sb_fini(&sb);
    return built;
}

/*
 * A socket connected to 127.0.0.1:@port, reads and writes timing out
 * after @timeout_s, or -1 with errno set.
 */
static inline int dial_timeout(int port, long timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

#endif /* STAGEPROF_TEST_NET_H */
