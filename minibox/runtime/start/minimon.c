/* minimon: the per-container monitor after the container has started (the compiled twin
 * of monitor.py; see mbstart.c for the start and minimon.py for the build).
 *
 * mbstart.c clones the container's init, puts it in its cgroup and reports to the runtime
 * worker, then calls monitor_main (it stays the init's parent), which does the long-lived
 * part with ~100 KiB instead of a forked Python's megabytes:
 *   - copies the container's stdout/stderr (or its PTY) into container.log, framed as
 *     "<unix ns> <o|e|O|E> <data>\n" (see logs.py), rotating by size;
 *   - serves attach.sock clients (frames: kind + be16 length + body): 'd' input for the
 *     PTY or the stdin pipe (-i), 'r' "rows cols" resize, 'c' close stdin (EOF, no PTY);
 *     PTY output also goes to every client, best effort: never blocking (the log has all
 *     of it; a client that does not read, like the daemon's input connection, must not
 *     stall the container);
 *   - watches ACKFD (see below);
 *   - reaps the init, with --rm deletes its anonymous volumes (before the exit record, so a
 *     `run --rm` that returns has left none), writes exit.json (tmp + rename), removes the
 *     cgroup dirs, and with --rm writes the tombstone, releases the name and removes the
 *     container dir.
 *
 * monitor_main's arguments (argv[0] unused): DIR DATAROOT ID NAME RUN PID AUTOREMOVE LOGMAX OUTFD
 *                ERRFD INFD LISTENFD ACKFD NVOL VOL... CGDIR...
 * INFD: where input frames go: the PTY master (== OUTFD) or the stdin pipe's write end, or -1.
 * Input is written without blocking: while a frame is pending (the container is not reading),
 * the clients are not read, so the back pressure reaches the sender, and output keeps flowing.
 * ACKFD: the worker sends one byte ('k') once it has recorded the start, then closes its end;
 * the exit is recorded only after that (a fast container could otherwise be removed before
 * its state is written).  EOF without the byte: the start was never recorded (the worker died
 * or failed), so the container is killed (SIGKILL to its init, its PID namespace goes with it)
 * and exit.json says 137 with an "error".  No timeout while the container runs (a slow worker
 * never gets its container killed); after its exit, ACK_WAIT_MS at most, then the exit is
 * recorded anyway.
 * VOL: with AUTOREMOVE, the anonymous volume dirs to delete at the exit.  Each one is checked:
 * DATAROOT/volumes/<64 hex> (symlinks resolved in the parent only), a real directory, its
 * volume.json anonymous and made for this container ID, mounted by no other container; the
 * delete never follows a symlink nor leaves the volume's filesystem (nftw FTW_PHYS|FTW_MOUNT).
 * Built by minibox.runtime.start.minimon (cc -O2 -static); when no compiler is there, the
 * Python monitor (monitor.py, cloned from the zygote) does the same job.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "minimon.h"

#define MAXCLIENTS 16
#define LOGFILES 3
#define ACK_WAIT_MS 120000     /* monitor.py ACK_WAIT_S */
#define UNRECORDED "the start was never recorded (the runtime worker died or failed before " \
                   "writing the container's state)"

static const char *dir, *root, *id, *name;
static int run_no, autoremove, logfd = -1, master = -1, in_fd = -1, in_eof;
static char inbuf[65536];          /* the input frame not yet written to in_fd */
static size_t inlen, inoff;
static long long logmax, logsize;
static char **cgdirs, **vols;
static int ncg, nvol;
static int ack_fd = -1, unrecorded;
static int clients[MAXCLIENTS];

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, 1000); continue; }
            return -1;
        }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static void open_log(void) {
    logfd = open("container.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    logsize = (logfd >= 0 && fstat(logfd, &st) == 0) ? st.st_size : 0;
}

static void rotate(void) {
    char a[64], b[64];
    for (int i = LOGFILES - 1; i > 0; i--) {
        if (i == 1) snprintf(a, sizeof a, "container.log");
        else snprintf(a, sizeof a, "container.log.%d", i - 1);
        snprintf(b, sizeof b, "container.log.%d", i);
        rename(a, b);
    }
    close(logfd);
    open_log();
}

static void log_write(char stream, const char *data, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char head[40];
    int hl = snprintf(head, sizeof head, "%lld %c ",
                      (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, stream);
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t len = nl ? (size_t)(nl - data) : n;
        head[hl - 2] = nl ? stream : (char)(stream - 32);   /* 'O'/'E': partial line */
        if (logfd >= 0) {
            write_all(logfd, head, hl);
            write_all(logfd, data, len);
            write_all(logfd, "\n", 1);
            logsize += hl + len + 1;
        }
        data += len + (nl ? 1 : 0);
        n -= len + (nl ? 1 : 0);
    }
    if (logmax > 0 && logsize >= logmax) rotate();
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void drop_client(int i) { close(clients[i]); clients[i] = -1; }

static int recv_exact(int fd, char *buf, size_t n) {
    while (n) {
        ssize_t r = recv(fd, buf, n, 0);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
        buf += r; n -= (size_t)r;
    }
    return 0;
}

static void close_input(void) {
    /* the PTY master is closed with the output side; a stdin pipe here: the container's EOF */
    if (in_fd >= 0 && in_fd != master) close(in_fd);
    in_fd = -1; inlen = inoff = 0;
}

/* Write what the input fd takes now; 0 when nothing is left pending. */
static int flush_input(void) {
    while (inoff < inlen) {
        ssize_t w = write(in_fd, inbuf + inoff, inlen - inoff);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return 1;
        if (w < 0) { close_input(); return 0; }     /* EPIPE/EIO: nobody reads it any more */
        inoff += (size_t)w;
    }
    inlen = inoff = 0;
    if (in_eof && in_fd != master) close_input();
    return 0;
}

static void client_input(int i) {
    unsigned char h[3];
    char body[64];
    if (recv_exact(clients[i], (char *)h, 3) < 0) { drop_client(i); return; }
    size_t n = ((size_t)h[1] << 8) | h[2];
    char *dst = h[0] == 'd' ? inbuf : body;        /* inbuf is free: see the main loop */
    if (h[0] != 'd' && n >= sizeof body) { drop_client(i); return; }
    if (n && recv_exact(clients[i], dst, n) < 0) { drop_client(i); return; }
    if (h[0] == 'd' && in_fd >= 0) { inlen = n; inoff = 0; flush_input(); }
    else if (h[0] == 'c') { in_eof = 1; if (inlen == 0) flush_input(); }
    else if (h[0] == 'r' && master >= 0) {
        body[n] = 0;
        struct winsize ws = {0};
        if (sscanf(body, "%hu %hu", &ws.ws_row, &ws.ws_col) == 2) ioctl(master, TIOCSWINSZ, &ws);
    }
}

static int oom_killed(void) {
    /* v1: memory.oom_control of the memory hierarchy's dir; v2: memory.events */
    const char *d = NULL, *file = NULL;
    char path[4200], line[256];
    for (int i = 0; i < ncg; i++)
        if (strstr(cgdirs[i], "/memory/")) { d = cgdirs[i]; file = "memory.oom_control"; }
    if (!d && ncg == 1) { d = cgdirs[0]; file = "memory.events"; }
    if (!d) return 0;
    snprintf(path, sizeof path, "%s/%s", d, file);
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    long long n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "oom_kill %lld", &n) == 1) break;
    fclose(f);
    return n > 0;
}

static void write_json(const char *path, const char *json) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_all(fd, json, strlen(json));
    close(fd);
    rename(tmp, path);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)ftw;
    if (flag == FTW_DP) rmdir(p); else unlink(p);
    return 0;
}

static void remove_cgroups(void) {
    for (int i = 0; i < ncg; i++)
        for (int t = 0; t < 50; t++) {
            if (rmdir(cgdirs[i]) == 0 || errno == ENOENT || errno != EBUSY) break;
            usleep(2000 * (t + 1));
        }
}

/* The worker's verdict on the ack socket (non-blocking): 'k' then EOF: the start is
 * recorded.  EOF alone: it never will be: SIGKILL to the init unless it has been reaped
 * (until then it is our child: never a reused pid). */
static void read_ack(pid_t child, int reaped) {
    char b[16];
    ssize_t r = read(ack_fd, b, sizeof b);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r > 0 && !memchr(b, 'k', (size_t)r)) return;     /* not the byte: keep waiting */
    close(ack_fd);
    ack_fd = -1;
    if (r <= 0) {
        unrecorded = 1;
        if (!reaped) kill(child, SIGKILL);
    }
}

/* After the exit: the worker's verdict, ACK_WAIT_MS at most. */
static void await_ack(pid_t child) {
    long long end = now_ms() + ACK_WAIT_MS;
    while (ack_fd >= 0) {
        long long left = end - now_ms();
        struct pollfd p = {ack_fd, POLLIN, 0};
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { close(ack_fd); ack_fd = -1; return; }    /* slow worker: record anyway */
        read_ack(child, 1);
    }
}

static int is_hex64(const char *s) {
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == 0;
}

/* Does the file contain needle?  (Our JSON is compact: json.dumps with ",", ":".) */
static int file_has(const char *path, const char *needle) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    struct stat st;
    int found = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (64 << 20)) {
        size_t size = (size_t)st.st_size, got = 0;
        char *buf = malloc(size + 1);
        while (buf && got < size) {
            ssize_t r = read(fd, buf + got, size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (buf) found = memmem(buf, got, needle, strlen(needle)) != NULL;
        free(buf);
    }
    close(fd);
    return found;
}

/* Is volume vname mounted by a container other than this one?  (volumes.users) */
static int volume_in_use(const char *vname) {
    char path[4200], needle[128];
    snprintf(path, sizeof path, "%s/containers", root);
    snprintf(needle, sizeof needle, "\"source\":\"%s\"", vname);
    DIR *d = opendir(path);
    if (!d) return 1;                    /* cannot tell: keep it (volume ls reaps it later) */
    struct dirent *e;
    int used = 0;
    while (!used && (e = readdir(d))) {
        if (!is_hex64(e->d_name) || !strcmp(e->d_name, id)) continue;
        snprintf(path, sizeof path, "%s/containers/%s/config.json", root, e->d_name);
        used = file_has(path, needle);
    }
    closedir(d);
    return used;
}

static void remove_volumes(void) {
    char vroot[4200], real_root[PATH_MAX], parent[PATH_MAX], real_parent[PATH_MAX];
    char path[PATH_MAX + 80], meta[PATH_MAX + 100], mine[128];
    if (!nvol) return;
    snprintf(vroot, sizeof vroot, "%s/volumes", root);
    if (!realpath(vroot, real_root)) return;
    snprintf(mine, sizeof mine, "\"container\":\"%s\"", id);
    for (int i = 0; i < nvol; i++) {
        const char *v = vols[i], *slash = strrchr(v, '/');
        if (v[0] != '/' || !slash || !is_hex64(slash + 1)) continue;
        size_t plen = (size_t)(slash - v);
        if (plen == 0 || plen >= sizeof parent) continue;
        memcpy(parent, v, plen);
        parent[plen] = 0;
        if (!realpath(parent, real_parent) || strcmp(real_parent, real_root)) continue;
        snprintf(path, sizeof path, "%s/%s", real_root, slash + 1);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        snprintf(meta, sizeof meta, "%s/volume.json", path);
        if (!file_has(meta, "\"anonymous\":true") || !file_has(meta, mine)) continue;
        if (volume_in_use(slash + 1)) continue;
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    }
}

static void finish(int status) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char json[512];
    snprintf(json, sizeof json,
             "{%s%s%s\"exit_code\": %d, \"finished_at\": %lld.%06ld, \"oom_killed\": %s, \"run\": %d}",
             unrecorded ? "\"error\": \"" : "", unrecorded ? UNRECORDED : "", unrecorded ? "\", " : "",
             code, (long long)ts.tv_sec, ts.tv_nsec / 1000, oom_killed() ? "true" : "false", run_no);
    if (logfd >= 0) close(logfd);
    unlink("attach.sock");
    if (autoremove) remove_volumes();    /* before the exit record: see the top */
    write_json("exit.json", json);
    remove_cgroups();
    if (autoremove) {
        char path[4200], link[128];
        snprintf(path, sizeof path, "%s/containers/.exits/%s", root, id);
        write_json(path, json);
        if (name[0]) {
            snprintf(path, sizeof path, "%s/containers/.names/%s", root, name);
            ssize_t n = readlink(path, link, sizeof link - 1);
            if (n > 0) { link[n] = 0; if (!strcmp(link, id)) unlink(path); }
        }
        if (chdir("/") == 0) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* Copy what the stream has into the log (and, for the PTY, to the clients); -1 at its end. */
static void pump(int *fd, char stream) {
    static char buf[65536];
    ssize_t r = read(*fd, buf, sizeof buf);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) {
        if (*fd == in_fd) in_fd = -1, inlen = inoff = 0;
        if (*fd == master) master = -1;
        close(*fd); *fd = -1;
        return;
    }
    log_write(stream, buf, (size_t)r);
    if (*fd == master)
        for (int i = 0; i < MAXCLIENTS; i++)
            if (clients[i] >= 0 && send(clients[i], buf, (size_t)r, MSG_DONTWAIT | MSG_NOSIGNAL) < 0
                && errno != EAGAIN && errno != EINTR) drop_client(i);
}

static void accept_client(int lis) {
    int c = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
    for (int i = 0; c >= 0 && i < MAXCLIENTS; i++) if (clients[i] < 0) { clients[i] = c; c = -1; }
    if (c >= 0) close(c);
}

/* The loop: until the init has exited and its output is drained (or 2 s after its exit,
 * when something outside keeps a pipe open).  Returns its wait status. */
static int serve(pid_t child, int out, int err, int lis, int sfd) {
    int status = 0, exited = 0;
    long long deadline = 0;
    if (waitpid(child, &status, WNOHANG) == child) {   /* exited before the loop */
        exited = 1;
        deadline = now_ms() + 2000;
    }
    for (;;) {
        struct pollfd p[6 + MAXCLIENTS];
        int n = 0, idx_out = -1, idx_err = -1, idx_lis = -1, idx_in = -1, idx_ack = -1, idx_sig;
        if (out >= 0) { idx_out = n; p[n++] = (struct pollfd){out, POLLIN, 0}; }
        if (err >= 0) { idx_err = n; p[n++] = (struct pollfd){err, POLLIN, 0}; }
        if (lis >= 0) { idx_lis = n; p[n++] = (struct pollfd){lis, POLLIN, 0}; }
        if (inlen) { idx_in = n; p[n++] = (struct pollfd){in_fd, POLLOUT, 0}; }
        if (ack_fd >= 0) { idx_ack = n; p[n++] = (struct pollfd){ack_fd, POLLIN, 0}; }
        idx_sig = n; p[n++] = (struct pollfd){sfd, POLLIN, 0};
        int base = n;
        /* clients are read only when the last input frame is written (back pressure) */
        for (int i = 0; !inlen && i < MAXCLIENTS; i++)
            if (clients[i] >= 0) p[n++] = (struct pollfd){clients[i], POLLIN, 0};
        if (exited && out < 0 && err < 0) break;
        int timeout = exited ? (int)(deadline - now_ms()) : -1;
        if (exited && timeout <= 0) break;
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        short ready = POLLIN | POLLHUP | POLLERR;
        if (idx_out >= 0 && (p[idx_out].revents & ready)) pump(&out, 'o');
        if (idx_err >= 0 && (p[idx_err].revents & ready)) pump(&err, 'e');
        if (idx_in >= 0 && in_fd >= 0 && p[idx_in].revents) flush_input();
        if (idx_lis >= 0 && (p[idx_lis].revents & POLLIN)) accept_client(lis);
        if (idx_ack >= 0 && p[idx_ack].revents) read_ack(child, exited);
        for (int j = base; j < n && !inlen; j++) {
            if (!(p[j].revents & ready)) continue;
            for (int i = 0; i < MAXCLIENTS; i++) if (clients[i] == p[j].fd) { client_input(i); break; }
        }
        if (p[idx_sig].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            if (!exited && waitpid(child, &status, WNOHANG) == child) {
                exited = 1;
                deadline = now_ms() + 2000;
                if (lis >= 0) { close(lis); lis = -1; }
                if (in_fd != master) close_input();
            }
        }
    }
    if (!exited) waitpid(child, &status, 0);
    return status;
}

int monitor_main(int argc, char **argv) {
    if (argc < 15 || atoi(argv[14]) < 0 || atoi(argv[14]) > argc - 15) {
        fprintf(stderr, "minimon: bad monitor arguments\n");
        return 2;
    }
    dir = argv[1]; root = argv[2]; id = argv[3]; name = argv[4];
    run_no = atoi(argv[5]);
    pid_t child = (pid_t)atoi(argv[6]);
    autoremove = atoi(argv[7]);
    logmax = atoll(argv[8]);
    int out = atoi(argv[9]), err = atoi(argv[10]), lis = atoi(argv[12]);
    ack_fd = atoi(argv[13]);
    in_fd = atoi(argv[11]);
    nvol = atoi(argv[14]);
    vols = argv + 15;
    cgdirs = argv + 15 + nvol; ncg = argc - 15 - nvol;
    prctl(PR_SET_NAME, "minibox-mon", 0, 0, 0);
    if (chdir(dir) != 0) return 1;
    signal(SIGPIPE, SIG_IGN); signal(SIGINT, SIG_IGN); signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN); signal(SIGQUIT, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask); sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (in_fd >= 0 && in_fd == out) master = out;
    if (in_fd >= 0) fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    if (ack_fd >= 0) {
        fcntl(ack_fd, F_SETFD, FD_CLOEXEC);
        fcntl(ack_fd, F_SETFL, fcntl(ack_fd, F_GETFL) | O_NONBLOCK);
    }
    for (int i = 0; i < MAXCLIENTS; i++) clients[i] = -1;
    open_log();
    int status = serve(child, out, err, lis, sfd);
    await_ack(child);
    finish(status);
    return 0;
}
