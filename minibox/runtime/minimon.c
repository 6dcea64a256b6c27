/* minimon: the per-container monitor after the container has started (see monitor.py).
 *
 * The Python monitor clones the container's init, puts it in its cgroup and reports to the
 * runtime worker, then execs this program (it stays the init's parent), which does the
 * long-lived part with ~100 KiB instead of a forked Python's megabytes:
 *   - copies the container's stdout/stderr (or its PTY) into container.log, framed as
 *     "<unix ns> <o|e|O|E> <data>\n" (see logs.py), rotating by size;
 *   - with a PTY, serves attach.sock clients (frames: 'd'/'r' + be16 length + body);
 *   - reaps the init, writes exit.json (tmp + rename), removes the cgroup dirs, and with
 *     --rm writes the tombstone, releases the name and removes the container dir.
 *
 * usage: minimon DIR DATAROOT ID NAME RUN PID AUTOREMOVE LOGMAX OUTFD ERRFD LISTENFD ACKFD CGDIR...
 * ACKFD: the worker closes its end once it has recorded the start; the exit is recorded only
 * after that (a fast container could otherwise be removed before its state is written).
 * Built by minibox.runtime.minimon (cc -O2); when no compiler is there, the Python monitor
 * does the same job.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#define MAXCLIENTS 16
#define LOGFILES 3

static const char *dir, *root, *id, *name;
static int run_no, autoremove, logfd = -1, master = -1;
static long long logmax, logsize;
static char **cgdirs;
static int ncg;
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

static void drop_client(int i) { close(clients[i]); clients[i] = -1; }

static int recv_exact(int fd, char *buf, size_t n) {
    while (n) {
        ssize_t r = recv(fd, buf, n, 0);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
        buf += r; n -= (size_t)r;
    }
    return 0;
}

static void client_input(int i) {
    unsigned char h[3];
    char body[65536];
    if (recv_exact(clients[i], (char *)h, 3) < 0) { drop_client(i); return; }
    size_t n = ((size_t)h[1] << 8) | h[2];
    if (n && recv_exact(clients[i], body, n) < 0) { drop_client(i); return; }
    if (master < 0) return;
    if (h[0] == 'd') write_all(master, body, n);
    else if (h[0] == 'r') {
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

static void wait_ack(int fd) {
    if (fd < 0) return;
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 30000);
    close(fd);
}

static void finish(int status) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char json[256];
    snprintf(json, sizeof json,
             "{\"exit_code\": %d, \"finished_at\": %lld.%06ld, \"oom_killed\": %s, \"run\": %d}",
             code, (long long)ts.tv_sec, ts.tv_nsec / 1000, oom_killed() ? "true" : "false", run_no);
    if (logfd >= 0) close(logfd);
    unlink("attach.sock");
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

int main(int argc, char **argv) {
    if (argc < 13) { fprintf(stderr, "usage: minimon DIR ROOT ID NAME RUN PID RM LOGMAX OUT ERR LISTEN ACK CG...\n"); return 2; }
    dir = argv[1]; root = argv[2]; id = argv[3]; name = argv[4];
    run_no = atoi(argv[5]);
    pid_t child = (pid_t)atoi(argv[6]);
    autoremove = atoi(argv[7]);
    logmax = atoll(argv[8]);
    int out = atoi(argv[9]), err = atoi(argv[10]), lis = atoi(argv[11]), ack = atoi(argv[12]);
    cgdirs = argv + 13; ncg = argc - 13;
    prctl(PR_SET_NAME, "minibox-mon", 0, 0, 0);
    if (chdir(dir) != 0) return 1;
    signal(SIGPIPE, SIG_IGN); signal(SIGINT, SIG_IGN); signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN); signal(SIGQUIT, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask); sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (lis >= 0) master = out;
    for (int i = 0; i < MAXCLIENTS; i++) clients[i] = -1;
    open_log();
    int status = 0, exited = 0;
    long long deadline = 0;
    if (waitpid(child, &status, WNOHANG) == child) {   /* exited before we were exec'd */
        struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
        exited = 1;
        deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + 2000;
    }
    char buf[65536];
    for (;;) {
        struct pollfd p[4 + MAXCLIENTS];
        int n = 0, idx_out = -1, idx_err = -1, idx_lis = -1, idx_sig;
        if (out >= 0) { idx_out = n; p[n++] = (struct pollfd){out, POLLIN, 0}; }
        if (err >= 0) { idx_err = n; p[n++] = (struct pollfd){err, POLLIN, 0}; }
        if (lis >= 0) { idx_lis = n; p[n++] = (struct pollfd){lis, POLLIN, 0}; }
        idx_sig = n; p[n++] = (struct pollfd){sfd, POLLIN, 0};
        int base = n;
        for (int i = 0; i < MAXCLIENTS; i++) if (clients[i] >= 0) p[n++] = (struct pollfd){clients[i], POLLIN, 0};
        if (exited && out < 0 && err < 0) break;
        int timeout = -1;
        if (exited) {
            struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
            long long now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
            if (now >= deadline) break;
            timeout = (int)(deadline - now);
        }
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        for (int k = 0; k < 2; k++) {
            int idx = k ? idx_err : idx_out, *fd = k ? &err : &out;
            if (idx < 0 || !(p[idx].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(*fd, buf, sizeof buf);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) { close(*fd); if (*fd == master) master = -1; *fd = -1; continue; }
            log_write(k ? 'e' : 'o', buf, (size_t)r);
            if (*fd == master)
                for (int i = 0; i < MAXCLIENTS; i++)
                    if (clients[i] >= 0 && write_all(clients[i], buf, (size_t)r) < 0) drop_client(i);
        }
        if (idx_lis >= 0 && (p[idx_lis].revents & POLLIN)) {
            int c = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
            for (int i = 0; c >= 0 && i < MAXCLIENTS; i++) if (clients[i] < 0) { clients[i] = c; c = -1; }
            if (c >= 0) close(c);
        }
        for (int j = base; j < n; j++) {
            if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            for (int i = 0; i < MAXCLIENTS; i++) if (clients[i] == p[j].fd) { client_input(i); break; }
        }
        if (p[idx_sig].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            if (!exited && waitpid(child, &status, WNOHANG) == child) {
                exited = 1;
                struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + 2000;
                if (lis >= 0) { close(lis); lis = -1; }
            }
        }
    }
    if (!exited) waitpid(child, &status, 0);
    wait_ack(ack);
    finish(status);
    return 0;
}
