/* `minimon --start`: start a container and stay its monitor (the compiled twin of the Python
 * monitor's start, monitor.Monitor.spawn).
 *
 * The runtime worker posix_spawns this program (no fork of a Python process) with the start
 * spec on fd 3 (a memfd; wire.StartPlan.encode writes it) and the report socket on fd 4.  We fork once
 * so the worker can reap its child at once and the monitor is nobody's child; then, as the
 * Python monitor does: make the container's stdio (pipes, the stdin pipe with -i, or with -t
 * a socketpair the init sends its PTY master on), clone the init into its namespaces
 * (mbinit.c), put it in its cgroup while it builds its rootfs, let it go on ('g'), wait for
 * its exec (the close-on-exec error pipe closes) or its error, listen on attach.sock with
 * -t/-i, report "S pid start mpid mstart" (or "E code message"), and run the monitor
 * (minimon.c) with the report socket as the ack channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minimon.h"

#define SPEC_FD 3
#define REPORT_FD 4

const char *sp_str(struct spec *s) {
    char *t = s->p, *z = s->p < s->end ? memchr(t, 0, (size_t)(s->end - t)) : NULL;
    if (!z) { s->bad = 1; s->p = s->end; return ""; }
    s->p = z + 1;
    return t;
}

long long sp_int(struct spec *s) {
    const char *t = sp_str(s);
    char *e;
    errno = 0;
    long long v = strtoll(t, &e, 10);
    if (!*t || *e || errno) s->bad = 1;
    return v;
}

unsigned long long sp_u64(struct spec *s) {
    const char *t = sp_str(s);
    char *e;
    errno = 0;
    unsigned long long v = strtoull(t, &e, 10);
    if (!*t || *e || errno) s->bad = 1;
    return v;
}

char *read_all(int fd, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return NULL;
        if (n == cap) buf = realloc(buf, cap *= 2);
        if (!buf) return NULL;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

char **str_list(struct spec *s, int n) {
    char **out = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof *out);
    for (int i = 0; out && i < n; i++) out[i] = (char *)sp_str(s);
    return out;
}

/* The monitor's arguments (minimon.c main) as they come in the spec, and the init's. */
struct start {
    const char *dir, *root, *id, *name, *run, *rm, *logmax;
    int nvol, ncg, interactive;
    char **vols, **cgs;
    unsigned long clone_flags;
    struct init_cfg init;
};

static int parse(struct spec *s, struct start *st) {
    struct init_cfg *c = &st->init;
    if (strcmp(sp_str(s), "MB1")) return -1;
    st->dir = sp_str(s); st->root = sp_str(s); st->id = sp_str(s); st->name = sp_str(s);
    st->run = sp_str(s); st->rm = sp_str(s); st->logmax = sp_str(s);
    st->nvol = (int)sp_int(s);
    if (s->bad || st->nvol < 0 || st->nvol > 4096) return -1;
    st->vols = str_list(s, st->nvol);
    st->ncg = (int)sp_int(s);
    if (s->bad || st->ncg < 0 || st->ncg > 64) return -1;
    st->cgs = str_list(s, st->ncg);
    st->clone_flags = (unsigned long)sp_u64(s);
    c->tty = (int)sp_int(s); st->interactive = (int)sp_int(s); c->host_net = (int)sp_int(s);
    c->netns = sp_str(s); c->hostname = sp_str(s); c->root = sp_str(s);
    if (sp_ops(s, c) != 0) return -1;
    c->cwd = sp_str(s); c->path = sp_str(s); c->init_path = sp_str(s);
    if (sp_process(s, c) != 0) return -1;
    c->privileged = (int)sp_int(s); c->no_new_privs = (int)sp_int(s);
    c->seccomp_hex = sp_str(s);
    c->nrl = (int)sp_int(s);
    if (s->bad || c->nrl < 0 || c->nrl > 64) return -1;
    c->rl = calloc((size_t)c->nrl * 3 + 1, sizeof *c->rl);
    for (int i = 0; c->rl && i < 3 * c->nrl; i++) c->rl[i] = sp_int(s);
    c->oom_score_adj = (int)sp_int(s);
    if (strcmp(sp_str(s), "END") || s->bad) return -1;
    return c->ops && c->argv && c->envp && c->groups && c->rl && st->vols && st->cgs ? 0 : -1;
}

int sp_ops(struct spec *s, struct init_cfg *c) {
    c->nops = (int)sp_int(s);
    if (s->bad || c->nops < 0 || c->nops > 100000) return -1;
    c->ops = calloc((size_t)c->nops + 1, sizeof *c->ops);
    for (int i = 0; c->ops && i < c->nops; i++) {
        struct op *o = &c->ops[i];
        o->code = sp_str(s); o->src = sp_str(s); o->target = sp_str(s); o->join = sp_str(s);
        o->fstype = sp_str(s); o->data = sp_str(s);
        o->flags = (unsigned long)sp_u64(s); o->mode = (unsigned long)sp_u64(s);
        o->fail = sp_str(s);
    }
    return c->ops ? 0 : -1;
}

int sp_process(struct spec *s, struct init_cfg *c) {
    int n = (int)sp_int(s);
    if (s->bad || n < 1 || n > 1 << 20) return -1;
    c->argv = str_list(s, n);
    n = (int)sp_int(s);
    if (s->bad || n < 0 || n > 1 << 20) return -1;
    c->envp = str_list(s, n);
    c->uid = (unsigned)sp_int(s); c->gid = (unsigned)sp_int(s);
    c->ngroups = (int)sp_int(s);
    if (s->bad || c->ngroups < 0 || c->ngroups > 65536) return -1;     /* NGROUPS_MAX */
    c->groups = calloc((size_t)c->ngroups + 1, sizeof *c->groups);
    for (int i = 0; c->groups && i < c->ngroups; i++) c->groups[i] = (unsigned)sp_int(s);
    c->caps = sp_u64(s);
    return c->argv && c->envp && c->groups ? 0 : -1;
}

static long long proc_start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
    return p ? atoll(p + 1) : 0;
}

static void report(const char *msg) {
    if (write(REPORT_FD, msg, strlen(msg)) < 0) { /* the worker is gone */ }
}

/* The start failed: kill the init (a no-op if it is gone), reap it, remove the cgroups,
 * tell the worker (unless msg is empty) and exit. */
static int fail(pid_t pid, struct start *st, const char *msg) {
    char line[4200];
    if (pid > 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
    for (int i = 0; i < st->ncg; i++) rmdir(st->cgs[i]);
    if (msg[0]) { snprintf(line, sizeof line, "E %s\n", msg); report(line); }
    close(REPORT_FD);
    return 0;
}

static int attach_cgroups(struct start *st, pid_t pid) {
    char path[4200], v[32];
    int n = snprintf(v, sizeof v, "%d", pid);
    for (int i = 0; i < st->ncg; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", st->cgs[i]);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        ssize_t w = write(fd, v, (size_t)n);
        int saved = errno;
        close(fd);
        if (w != n) { errno = saved; return -1; }
    }
    return 0;
}

static int take_master(int sock) {
    char byte, cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) <= 0) return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int))) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

static int listen_attach(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "attach.sock"};
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink("attach.sock");
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || chmod("attach.sock", 0600) != 0
        || listen(s, 8) != 0) return -1;
    return s;
}

/* The container's stdio: pipes (a stdin pipe with -i, else /dev/null), or with -t one end
 * of a socketpair the init sends its PTY master on. */
struct io {
    int stdio[3];              /* what the init gets */
    int child[3], nchild;      /* its ends, closed here once it is cloned */
    int out, err, in, console; /* ours */
};

static int make_stdio(const struct start *st, struct io *io) {
    io->out = io->err = io->in = io->console = -1;
    if (st->init.tty) {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return -1;
        io->console = sp[0];
        io->stdio[0] = io->stdio[1] = io->stdio[2] = io->child[0] = sp[1];
        io->nchild = 1;
        return 0;
    }
    int ip[2] = {-1, -1}, op[2], ep[2];
    if (st->interactive) {
        if (pipe2(ip, O_CLOEXEC) != 0) return -1;
        io->in = ip[1];
    } else {
        ip[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (pipe2(op, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) return -1;
    io->out = op[0];
    io->err = ep[0];
    io->stdio[0] = io->child[0] = ip[0];
    io->stdio[1] = io->child[1] = op[1];
    io->stdio[2] = io->child[2] = ep[1];
    io->nchild = 3;
    return 0;
}

/* Put the init in its cgroup and let it go on; wait for its exec (the error pipe closes) or
 * its error.  NULL, or what to report (in m, or the init's own message). */
static char *await_init(struct start *st, pid_t pid, int err_r, int go_w, char *m, size_t msz) {
    size_t mlen = 0;
    char *msg;
    if (attach_cgroups(st, pid) != 0) {
        /* killed before it goes on; an init that failed on its own has said why */
        snprintf(m, msz, "1 cannot join the container's cgroup: %s", strerror(errno));
        kill(pid, SIGKILL);
        close(go_w);
        msg = read_all(err_r, &mlen);
        close(err_r);
        if (msg && mlen) { msg[mlen < 4000 ? mlen : 4000] = 0; return msg; }
        return m;
    }
    if (write(go_w, "g", 1) != 1) { /* it died: its error or EOF says why */ }
    close(go_w);
    msg = read_all(err_r, &mlen);
    close(err_r);
    if (msg && mlen) { msg[mlen < 4000 ? mlen : 4000] = 0; return msg; }
    return NULL;
}

/* The monitor proper (minimon.c), with its arguments. */
static int run_monitor(struct start *st, pid_t pid, const struct io *io, int lis) {
    char a_pid[16], a_out[16], a_err[16], a_in[16], a_lis[16], a_ack[16], a_nvol[16];
    snprintf(a_pid, sizeof a_pid, "%d", pid);
    snprintf(a_out, sizeof a_out, "%d", io->out);
    snprintf(a_err, sizeof a_err, "%d", io->err);
    snprintf(a_in, sizeof a_in, "%d", io->in);
    snprintf(a_lis, sizeof a_lis, "%d", lis);
    snprintf(a_ack, sizeof a_ack, "%d", REPORT_FD);
    snprintf(a_nvol, sizeof a_nvol, "%d", st->nvol);
    int argc = 15 + st->nvol + st->ncg;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    const char *head[15] = {"minimon", st->dir, st->root, st->id, st->name, st->run, a_pid, st->rm,
                            st->logmax, a_out, a_err, a_in, a_lis, a_ack, a_nvol};
    memcpy(argv, head, sizeof head);
    memcpy(argv + 15, st->vols, (size_t)st->nvol * sizeof *argv);
    memcpy(argv + 15 + st->nvol, st->cgs, (size_t)st->ncg * sizeof *argv);
    return monitor_main(argc, argv);
}

/* Our own process: the spec read, nobody's child, signals and name of a monitor. */
static int become_monitor(struct start *st) {
    struct spec s = {0};
    size_t len = 0;
    char *buf = read_all(SPEC_FD, &len);
    close(SPEC_FD);
    fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);
    syscall(SYS_close_range, 5, ~0U, 0);       /* nothing else of the worker's */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    pid_t mid = fork();                        /* the worker reaps this one at once */
    if (mid < 0) { report("E 1 monitor failed: fork\n"); return -1; }
    if (mid > 0) _exit(0);
    s.p = buf;
    s.end = buf ? buf + len : NULL;
    if (!buf || parse(&s, st) != 0) { report("E 1 monitor failed: a malformed start spec\n"); return -1; }
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], SIG_IGN);
    prctl(PR_SET_NAME, "minibox-mon", 0, 0, 0);
    if (chdir(st->dir) != 0) { report("E 1 monitor failed: no container dir\n"); return -1; }
    return 0;
}

static int start_main(void) {
    struct start st = {0};
    struct io io = {0};
    int errp[2], gop[2];
    char m[512];
    if (become_monitor(&st) != 0) return 1;
    if (make_stdio(&st, &io) != 0 || pipe2(errp, O_CLOEXEC) != 0 || pipe2(gop, O_CLOEXEC) != 0)
        return fail(0, &st, "1 cannot make the container's pipes");
    pid_t pid = (pid_t)syscall(SYS_clone, st.clone_flags | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        snprintf(m, sizeof m, "1 container setup failed: clone: %s", strerror(errno));
        return fail(0, &st, m);
    }
    if (pid == 0) {
        close(errp[0]); close(gop[1]);
        int mine[] = {io.console, io.in, io.out, io.err};
        for (size_t i = 0; i < sizeof mine / sizeof *mine; i++) if (mine[i] >= 0) close(mine[i]);
        init_main(&st.init, io.stdio, errp[1], gop[0]);
        _exit(1);
    }
    /* now, while it waits for us: a fast command may be a zombie once it has exec'd, and a
     * zombie has no start time to read */
    long long pid_start = proc_start_time(pid);
    for (int i = 0; i < io.nchild; i++) close(io.child[i]);
    close(errp[1]); close(gop[0]);
    char *msg = await_init(&st, pid, errp[0], gop[1], m, sizeof m);
    if (msg) return fail(pid, &st, msg);
    if (io.console >= 0) {
        io.out = io.in = take_master(io.console);
        close(io.console);
        if (io.out < 0) return fail(pid, &st, "1 the container's init did not pass its terminal");
    }
    int lis = -1;
    if ((st.init.tty || st.interactive) && (lis = listen_attach()) < 0)
        return fail(pid, &st, "1 cannot listen on attach.sock");
    char line[128];
    snprintf(line, sizeof line, "S %d %lld %d %lld\n", pid, pid_start, getpid(), proc_start_time(getpid()));
    if (write(REPORT_FD, line, strlen(line)) != (ssize_t)strlen(line)) return fail(pid, &st, "");
    return run_monitor(&st, pid, &io, lis);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--start")) return start_main();
    if (argc == 2 && !strcmp(argv[1], "--pid1")) return pid1_main();
    fprintf(stderr, "usage: minimon --start  (the start spec on fd 3, the report socket on fd 4;"
                    " run by the runtime worker)\n"
                    "       minimon --pid1   (a build RUN's plan on fd 3, the error pipe on fd 4;"
                    " run by the build sandbox)\n");
    return 2;
}
