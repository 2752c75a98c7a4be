/*
 * groove-probe: a static client for the agent endpoint, pushed into a test sandbox (the busybox
 * test image has neither socat nor python3). Built by tests/groove_agent.rs with `cc -static`.
 *
 *   groove-probe call SOCK JSON...   send each request line, print each response line
 *   groove-probe fork SOCK JSON OUT  connect, fork; the parent exits at once, the child then
 *                                    sends JSON on the inherited connection, writes the answer to OUT
 *   groove-probe flood SOCK SECS [CONNS]  CONNS connections with 64 pipelined requests each,
 *                                    for SECS seconds; one "sent N ok N limited N other N" line each
 *   groove-probe lat SOCK N          N sequential `whoami` calls; prints "p50 P p99 P max M" (us)
 *   groove-probe plant DIR           try to replace the endpoint in DIR; prints what happened
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int dial(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("connect-error %s\n", strerror(errno));
        exit(2);
    }
    return fd;
}

static char buf[1 << 20];
static size_t have = 0;

/* One line from fd into out (without the newline); 0 at end of stream. */
static int read_line(int fd, char *out, size_t cap) {
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t n = (size_t)(nl - buf);
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, buf, c);
            out[c] = 0;
            memmove(buf, nl + 1, have - n - 1);
            have -= n + 1;
            return 1;
        }
        if (have == sizeof buf) return 0;
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0) return 0;
        have += (size_t)r;
    }
}

static void send_line(int fd, const char *s) {
    size_t n = strlen(s);
    char *m = malloc(n + 1);
    memcpy(m, s, n);
    m[n] = '\n';
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(fd, m + off, n + 1 - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(m);
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char line[1 << 20];

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    /* A connection the daemon refused and closed must be reported, not kill the probe: a write to
       it raises SIGPIPE, whose default action ends the process before it can say "closed". */
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argv[1];
    if (!strcmp(mode, "call")) {
        int fd = dial(argv[2]);
        for (int i = 3; i < argc; i++) {
            send_line(fd, argv[i]);
            if (!read_line(fd, line, sizeof line)) { printf("closed\n"); return 1; }
            printf("%s\n", line);
        }
        /* A refused connection is answered without a request: print what is there. */
        if (argc == 3 && read_line(fd, line, sizeof line)) printf("%s\n", line);
        return 0;
    }
    if (!strcmp(mode, "fork")) {
        if (argc < 5) return 2;
        int fd = dial(argv[2]);
        pid_t p = fork();
        if (p != 0) _exit(0);
        setsid();
        usleep(300000); /* the parent that connected is gone now */
        FILE *out = fopen(argv[4], "w");
        if (!out) return 1;
        send_line(fd, argv[3]);
        if (!read_line(fd, line, sizeof line)) fprintf(out, "closed\n");
        else fprintf(out, "%s\n", line);
        fclose(out);
        return 0;
    }
    if (!strcmp(mode, "flood")) {
        /* CONNS connections (processes), each with 64 pipelined requests in flight at a time, as
           fast as the daemon answers; one summary line per connection. */
        int conns = argc > 4 ? atoi(argv[4]) : 1;
        for (int c = 1; c < conns; c++) {
            if (fork() == 0) break;
            if (c == conns - 1) {
                /* the parent also floods, then waits for the children below */
            }
        }
        int fd = dial(argv[2]);
        double end = now_us() + atof(argv[3]) * 1e6;
        long sent = 0, ok = 0, limited = 0, other = 0;
        static char burst[64 * 64];
        size_t blen = 0;
        for (int i = 0; i < 64; i++) {
            const char *r = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"log.head\"}\n";
            memcpy(burst + blen, r, strlen(r));
            blen += strlen(r);
        }
        while (now_us() < end) {
            size_t off = 0;
            while (off < blen) {
                ssize_t w = write(fd, burst + off, blen - off);
                if (w <= 0) goto done;
                off += (size_t)w;
            }
            sent += 64;
            for (int i = 0; i < 64; i++) {
                if (!read_line(fd, line, sizeof line)) goto done;
                if (strstr(line, "\"result\"")) ok++;
                else if (strstr(line, "-32029")) limited++;
                else other++;
            }
        }
    done:
        printf("sent %ld ok %ld limited %ld other %ld\n", sent, ok, limited, other);
        fflush(stdout);
        while (wait(NULL) > 0) {}
        return 0;
    }
    if (!strcmp(mode, "lat")) {
        int fd = dial(argv[2]);
        int n = atoi(argv[3]);
        double *v = calloc((size_t)n, sizeof *v);
        int got = 0;
        for (int i = 0; i < n; i++) {
            double t0 = now_us();
            send_line(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"whoami\"}");
            if (!read_line(fd, line, sizeof line)) break;
            if (!strstr(line, "\"result\"")) { printf("error %s\n", line); return 1; }
            v[got++] = now_us() - t0;
        }
        qsort(v, (size_t)got, sizeof *v, cmp);
        printf("n %d p50 %.0f p99 %.0f max %.0f\n", got, v[got / 2], v[(got * 99) / 100], v[got - 1]);
        return 0;
    }
    if (!strcmp(mode, "plant")) {
        char p[512];
        snprintf(p, sizeof p, "%s/groove.sock", argv[2]);
        printf("unlink %s\n", unlink(p) == 0 ? "ok" : strerror(errno));
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s/fake.sock", argv[2]);
        printf("bind %s\n", bind(fd, (struct sockaddr *)&a, sizeof a) == 0 ? "ok" : strerror(errno));
        snprintf(p, sizeof p, "%s/x", argv[2]);
        printf("mkdir %s\n", mkdir(p, 0700) == 0 ? "ok" : strerror(errno));
        return 0;
    }
    return 2;
}
