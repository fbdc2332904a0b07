/*
 * snapshot.c - stageprof_snapshot() and the snapshot signal.
 *
 * A snapshot is a trace file written with WRITE_KEEP: the events stay
 * buffered for the next file. stageprof_snapshot() writes one on the
 * caller's thread; STAGEPROF_SNAPSHOT_SIGNAL asks for one from outside:
 *
 *   signal --> on_signal():  pending = 1; write(pipe, 1 byte)
 *                                              |
 *   snapshot thread: poll(pipe) <--------------+
 *                    drain the pipe; pending 1 -> 0: write a snapshot
 *
 * The handler only stores to lock-free atomics and calls write(2), all
 * async-signal-safe; errno is preserved. Signals that arrive while a
 * snapshot is being written set `pending` again and leave a byte in the
 * pipe, so they coalesce into exactly one more snapshot after it. A full
 * pipe (O_NONBLOCK) drops the byte, never the request: one byte is enough.
 *
 * Lifetime: stageprof__snapshot_start() runs inside a start (g.lock held)
 * when tracing; stageprof__snapshot_stop() runs in stageprof_stop() after
 * the final trace, without locks, because the thread may be waiting for
 * g.lock inside a write and has to be joined. A snapshot request that
 * loses the race with the stop finds the session over and writes nothing
 * (trace_file.c).
 *
 * A stop releases g.lock before it comes here, so a new session can start
 * in between. Every traced start is matched by one later call of
 * stageprof__snapshot_stop(); a start that finds the previous session's
 * stop still due retires that session's thread itself (detached: it may
 * be waiting for the g.lock our caller holds) and counts the stop call
 * still to come as an orphan, which then does nothing.
 *
 * The previous handler is restored at stop, unless someone replaced ours
 * in the meantime. The pipe's write end is closed only once no handler can
 * be using it (`in_handler` counts handlers between reading the descriptor
 * and the end of their write).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* One signal installation: its pipe, thread and the handler it replaced. */
struct snapper {
    int sig;
    int rfd, wfd;         /* the pipe, both ends O_NONBLOCK|O_CLOEXEC */
    pthread_t thread;     /* the snapshot thread */
    int quit;             /* the thread ends (atomic) */
    int detached;         /* the thread frees the snapper (atomic) */
    struct sigaction old; /* handler in place before ours */
};

static struct {
    pthread_mutex_t lock;
    struct snapper *cur; /* installed for the current session, or NULL */
    int respawn;         /* forked child: cur has no pipe or thread yet */
    int active;          /* a traced session whose stop is still due */
    int orphans;         /* stop calls due from sessions already retired */
} sn = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Shared with the handler: atomics only. */
static int handler_fd = -1; /* write end of the current pipe; -1 none */
static int pending;         /* a signal arrived, no snapshot taken since */
static int in_handler;      /* handlers that may still use a descriptor */

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    __atomic_fetch_add(&in_handler, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pending, 1, __ATOMIC_SEQ_CST);
    int fd = __atomic_load_n(&handler_fd, __ATOMIC_SEQ_CST);
    if (fd >= 0) {
        /* EAGAIN: the pipe is full, so the thread wakes up anyway. */
        ssize_t n = write(fd, "s", 1);
        (void)n;
    }
    __atomic_fetch_sub(&in_handler, 1, __ATOMIC_SEQ_CST);
    errno = saved;
}

/* Empty the pipe: one wake-up covers every byte read. */
static void drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Close the pipe once no handler can still write to @s->wfd; free @s. */
static void snapper_free(struct snapper *s)
{
    /* Handlers last a few instructions; a signal flood only delays this. */
    while (__atomic_load_n(&in_handler, __ATOMIC_SEQ_CST) != 0)
        sched_yield();
    close(s->wfd);
    close(s->rfd);
    stageprof__free(s);
}

static void *snap_thread(void *arg)
{
    struct snapper *s = arg;
    for (;;) {
        struct pollfd p = {.fd = s->rfd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break; /* cannot happen with a valid descriptor */
        drain(s->rfd);
        /* Stopping wins over requests: the stop writes a final trace. */
        if (__atomic_load_n(&s->quit, __ATOMIC_ACQUIRE))
            break;
        if (__atomic_exchange_n(&pending, 0, __ATOMIC_SEQ_CST))
            (void)stageprof__trace_file_write(WRITE_KEEP); /* it logs */
    }
    if (__atomic_load_n(&s->detached, __ATOMIC_ACQUIRE))
        snapper_free(s);
    return NULL;
}

/* Put back the handler @s replaced, unless ours was replaced since. */
static void uninstall(struct snapper *s)
{
    struct sigaction now;
    if (sigaction(s->sig, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
        now.sa_handler == on_signal)
        sigaction(s->sig, &s->old, NULL);
    __atomic_store_n(&handler_fd, -1, __ATOMIC_SEQ_CST);
}

/* Ask @s's thread to end; it sees `quit` after draining the pipe. */
static void wake_to_quit(struct snapper *s)
{
    __atomic_store_n(&s->quit, 1, __ATOMIC_RELEASE);
    ssize_t n = write(s->wfd, "q", 1);
    (void)n;
}

/* Create @s's pipe and thread; 0 or an error (nothing left open). */
/* A pipe and thread for @s; requests already pending are kept when
 * @keep_pending (a forked child's signals before its thread existed). */
static int spawn(struct snapper *s, int keep_pending)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return stageprof__translate_errno(errno);
    s->rfd = fds[0];
    s->wfd = fds[1];
    s->quit = 0;
    s->detached = 0;
    int rc = stageprof__thread_create(&s->thread, NULL, snap_thread, s);
    if (rc != 0) {
        close(s->rfd);
        close(s->wfd);
        return STAGEPROF_ETHREAD;
    }
    if (!keep_pending)
        __atomic_store_n(&pending, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&handler_fd, s->wfd, __ATOMIC_SEQ_CST);
    return 0;
}

/* Spawn @s and install the handler; 0 or an error. */
static int install(struct snapper *s)
{
    int rc = spawn(s, 0);
    if (rc != 0)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(s->sig, &sa, &s->old) != 0) {
        rc = stageprof__translate_errno(errno);
        __atomic_store_n(&handler_fd, -1, __ATOMIC_SEQ_CST);
        wake_to_quit(s);
        pthread_join(s->thread, NULL);
        close(s->rfd);
        close(s->wfd);
        return rc;
    }
    return 0;
}

void stageprof__snapshot_start(void)
{
    int sig = stageprof__g.conf.snapshot_signal;
    pthread_mutex_lock(&sn.lock);
    if (sn.active) {
        /*
         * The previous session's stop has not reached snapshot_stop yet.
         * Its thread may wait for g.lock, held by our caller: retire it
         * without joining, and let that stop call find nothing to do.
         */
        sn.orphans++;
        struct snapper *old = sn.cur;
        sn.cur = NULL;
        if (old != NULL) {
            uninstall(old);
            __atomic_store_n(&old->detached, 1, __ATOMIC_RELEASE);
            pthread_detach(old->thread);
            wake_to_quit(old);
        }
    }
    sn.active = 1;
    if (sig > 0) {
        struct snapper *s = stageprof__calloc(1, sizeof *s);
        int rc = STAGEPROF_ENOMEM;
        if (s != NULL) {
            s->sig = sig;
            rc = install(s);
        }
        if (rc == 0) {
            sn.cur = s;
        } else {
            stageprof__free(s);
            stageprof__log(STAGEPROF_LOG_WARN,
                           "cannot set up the snapshot signal %d: %s (no "
                           "snapshots on that signal)",
                           sig, stageprof_strerror(rc));
        }
    }
    pthread_mutex_unlock(&sn.lock);
}

void stageprof__snapshot_stop(void)
{
    pthread_mutex_lock(&sn.lock);
    if (sn.orphans > 0) {
        /* A later session retired ours already; its own stays. */
        sn.orphans--;
        pthread_mutex_unlock(&sn.lock);
        return;
    }
    sn.active = 0;
    struct snapper *s = sn.cur;
    sn.cur = NULL;
    if (s != NULL)
        uninstall(s);
    int never_spawned = __atomic_exchange_n(&sn.respawn, 0, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&sn.lock);
    if (s == NULL)
        return;
    if (never_spawned) { /* a forked child that never recorded again */
        stageprof__free(s);
        return;
    }
    wake_to_quit(s);
    pthread_join(s->thread, NULL);
    snapper_free(s);
}

/*
 * fork(): the child has no snapshot thread, and the pipe it inherited is
 * the parent's (a byte written in the child would wake the parent). A child
 * that goes on tracing gets a pipe and thread of its own, with our handler
 * kept and the same previous handler to restore; one that does not trace
 * gets the previous handler back. Called by fork.c with the global lock
 * held in phases 0 and 1.
 */
void stageprof__snapshot_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&sn.lock);
        return;
    }
    if (phase == 1) {
        pthread_mutex_unlock(&sn.lock);
        return;
    }
    pthread_mutex_init(&sn.lock, NULL);
    /* Handlers and stops in flight were the parent's threads'. */
    __atomic_store_n(&in_handler, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pending, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&handler_fd, -1, __ATOMIC_SEQ_CST);
    sn.orphans = 0;
    int follow = stageprof__g.started && stageprof__g.conf.follow_fork;
    if (!follow)
        sn.active = 0;
    struct snapper *s = sn.cur;
    if (s == NULL)
        return;
    close(s->rfd);
    close(s->wfd);
    if (follow) {
        /*
         * The pipe and thread are made at the child's next profiler call
         * (stageprof__snapshot_resume), not here: creating a thread inside
         * a fork handler is not reliable under every runtime. A signal
         * before then is remembered (pending) and served then.
         */
        __atomic_store_n(&sn.respawn, 1, __ATOMIC_RELEASE);
        return;
    }
    sn.cur = NULL;
    uninstall(s);
    stageprof__free(s);
}

void stageprof__snapshot_resume(void)
{
    if (!__atomic_load_n(&sn.respawn, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&sn.lock);
    if (__atomic_load_n(&sn.respawn, __ATOMIC_ACQUIRE) && sn.cur != NULL &&
        spawn(sn.cur, 1) == 0) {
        __atomic_store_n(&sn.respawn, 0, __ATOMIC_RELEASE);
        /* A signal came before the thread existed: serve it now. */
        if (__atomic_load_n(&pending, __ATOMIC_SEQ_CST)) {
            ssize_t n = write(sn.cur->wfd, "s", 1);
            (void)n;
        }
    }
    pthread_mutex_unlock(&sn.lock);
}

int stageprof_snapshot(void)
{
    stageprof__snapshot_resume();
    /* Armed by STAGEPROF_ENABLE and nothing recorded yet: start, as the
     * first event would. */
    if (LOAD_ACQUIRE(&stageprof_hot_state) == STATE_ARMED)
        (void)stageprof__ensure_tracing();
    return stageprof__trace_file_write(WRITE_KEEP);
}
