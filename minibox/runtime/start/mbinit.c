/* The container's init, from clone() to the exec of tini (the compiled twin of init.py).
 *
 * Runs in the child mbstart.c cloned into new mount/PID/UTS/IPC(/net) namespaces.  Order:
 * stdio, hostname, loopback up, the filesystem steps of the spec (rootfs.steps: overlay,
 * volumes, /proc, /dev, /sys, /etc files, masks, pivot_root, sysctls; run_ops here is the
 * twin of rootfs.apply), with -t the console,
 * wait for the monitor to have put us in the cgroup, rlimits, oom_score_adj, look the command
 * up (127/126), bounding set, groups and ids, capabilities, ambient, no_new_privs, seccomp,
 * default signals, exec tini.  A failure is written to the error pipe as "<code> <message>"
 * and the child exits; success is the pipe closing on exec (it is close-on-exec).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "minimon.h"

static int err_fd = -1;
static const char *setup_prefix = "container setup failed: ";

void init_errors(int fd, const char *prefix) {
    err_fd = fd;
    setup_prefix = prefix;
}

void die(int code, const char *fmt, ...) {
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%d ", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (write(err_fd, msg, strlen(msg)) < 0) { /* nobody to tell */ }
    _exit(code);
}

#define SETUP_FAILED(fmt, ...) die(1, "%s" fmt, setup_prefix, ##__VA_ARGS__)

/* Does the rest of a path hold another component?  ("", "/", "/." do not.) */
static int more_parts(const char *rest) {
    while (*rest) {
        while (*rest == '/') rest++;
        if (!*rest) return 0;
        if (rest[0] == '.' && (rest[1] == '/' || rest[1] == 0)) { rest++; continue; }
        return 1;
    }
    return 0;
}

/* root + path with every symlink resolved inside root (rootfs.secure_join); create: 0, 'd'
 * (make missing dirs) or 'f' (missing dirs, then the last one a file).  -1 and errno. */
static int secure_join(const char *root, const char *path, int create, char *out, size_t outsz) {
    static char todo[2 * PATH_MAX], tmp[2 * PATH_MAX];
    char cur[PATH_MAX] = "", nxt[PATH_MAX], full[PATH_MAX + 256], comp[NAME_MAX + 1];
    int hops = 0;
    snprintf(todo, sizeof todo, "%s", path);
    const char *rest = todo;
    for (;;) {
        while (*rest == '/') rest++;
        if (!*rest) break;
        size_t len = strcspn(rest, "/");
        if (len > NAME_MAX) { errno = ENAMETOOLONG; return -1; }
        memcpy(comp, rest, len);
        comp[len] = 0;
        rest += len;
        if (!strcmp(comp, ".")) continue;
        if (!strcmp(comp, "..")) { char *s = strrchr(cur, '/'); if (s) *s = 0; continue; }
        if ((size_t)snprintf(nxt, sizeof nxt, "%s/%s", cur, comp) >= sizeof nxt) { errno = ENAMETOOLONG; return -1; }
        snprintf(full, sizeof full, "%s%s", root, nxt);
        struct stat st;
        if (lstat(full, &st) != 0) {
            if (errno != ENOENT) return -1;
            if (!create) { snprintf(out, outsz, "%s%s%s", root, nxt, rest); return 0; }
            if (more_parts(rest) || create == 'd') {
                if (mkdir(full, 0755) != 0) return -1;
            } else {
                int fd = open(full, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                if (fd < 0) return -1;
                close(fd);
            }
            strcpy(cur, nxt);
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            if (++hops > 40) { errno = ELOOP; return -1; }
            ssize_t n = readlink(full, target, sizeof target - 1);
            if (n < 0) return -1;
            target[n] = 0;
            if (target[0] == '/') cur[0] = 0;
            snprintf(tmp, sizeof tmp, "%s/%s", target, rest);
            memcpy(todo, tmp, sizeof todo);
            rest = todo;
            continue;
        }
        strcpy(cur, nxt);
    }
    snprintf(out, outsz, "%s%s", root, cur);
    return 0;
}

static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }
static int exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

static int bind_mount(const char *src, const char *tgt, unsigned long flags, int readonly) {
    if (mount(src, tgt, NULL, MS_BIND | flags, NULL) != 0) return -1;
    if (readonly && mount(NULL, tgt, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | flags, NULL) != 0) return -1;
    return 0;
}

static int write_file(const char *path, const char *data, int flags, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CLOEXEC | flags, mode);
    if (fd < 0) return -1;
    size_t n = strlen(data);
    ssize_t w = n ? write(fd, data, n) : 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return w == (ssize_t)n ? 0 : -1;
}

/* /etc/NAME: the content written into the container's /dev tmpfs (src), bound over the
 * image's file, unlinked (rootfs.bind_etc_files); mode 1: src is an old container's file. */
static int etc_file(const struct op *o, const char *tgt) {
    if (is_dir(tgt)) return 0;
    if (o->mode == 1) return bind_mount(o->src, tgt, 0, 0);
    if (write_file(o->src, o->data, O_CREAT | O_EXCL, 0644) != 0) return -1;
    int rc = bind_mount(o->src, tgt, 0, 0), saved = errno;
    unlink(o->src);
    errno = saved;
    return rc;
}

/* One step; 0 or -1 with errno. */
static int do_op(const struct op *o, const char *tgt) {
    switch (o->code[0]) {
    case 'P': return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    case 'C': return chdir(tgt);
    case 'M': return mount(o->src[0] ? o->src : NULL, tgt, o->fstype, o->flags,
                           o->data[0] ? o->data : NULL);
    case 'B': return bind_mount(o->src, tgt, o->flags, (int)o->mode);
    case 'N':
        if (mknod(tgt, S_IFCHR | (mode_t)o->mode, (dev_t)o->flags) != 0) return -1;
        return chmod(tgt, (mode_t)o->mode);
    case 'L': return symlink(o->src, tgt);
    case 'D': return mkdir(tgt, (mode_t)o->mode);
    case 'F': {
        int fd = open(tgt, O_CREAT | O_WRONLY | O_CLOEXEC, (mode_t)o->mode);
        if (fd < 0) return -1;
        close(fd);
        return 0;
    }
    case 'J': case 'X': return 0;              /* the join made it; checked by run_ops */
    case 'E': return etc_file(o, tgt);
    case 'm': return exists(tgt) && !is_dir(tgt) ? bind_mount(o->src, tgt, 0, 0) : 0;
    case 'k': return is_dir(tgt) ? mount(o->src, tgt, o->fstype, o->flags, o->data) : 0;
    case 'r': return exists(tgt) ? bind_mount(tgt, tgt, o->flags, 1) : 0;
    case 'V':
        if (chdir(tgt) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) return -1;
        if (umount2(".", MNT_DETACH) != 0) return -1;
        return chdir("/");
    case 'W': return write_file(tgt, o->data, O_TRUNC, 0);
    case 'U': return umount2(tgt, (int)o->flags);
    case 'R': return rmdir(tgt);
    }
    errno = EINVAL;
    return -1;
}

/* What a step is called in an error (rootfs.step_name). */
static const char *step_name(char code) {
    switch (code) {
    case 'M': case 'k': return "mount";
    case 'B': case 'm': case 'r': case 'E': return "bind mount";
    case 'V': return "pivot_root into";
    default: return "make";
    }
}

void run_ops(const struct init_cfg *c) {
    static char tgt[PATH_MAX + 512];
    for (int i = 0; i < c->nops; i++) {
        const struct op *o = &c->ops[i];
        int j = o->join[0];
        if (!j) snprintf(tgt, sizeof tgt, "%s", o->target);
        else if (secure_join(c->root, o->target, j == 'n' ? 0 : j, tgt, sizeof tgt) != 0)
            SETUP_FAILED("%s in the image: %s", o->target, strerror(errno));
        struct stat st;
        if (o->code[0] == 'X' && lstat(tgt, &st) == 0 && S_ISLNK(st.st_mode))   /* rootfs.steps */
            SETUP_FAILED("the image's %s is a symbolic link (it must be a directory, or absent)",
                         o->data);
        int rc = do_op(o, tgt);
        char fail = o->fail[0];
        if (fail == 'a') {                     /* an alternative follows: run it on failure only */
            if (rc == 0) i++;
            continue;
        }
        if (rc == 0) continue;
        if (fail == 'r') { rmdir(tgt); continue; }
        if (fail == 'i') continue;
        SETUP_FAILED("%s %s on %s: %s", step_name(o->code[0]), o->fstype[0] ? o->fstype : o->src,
                     j ? o->target : tgt, strerror(errno));   /* the container's path, if any */
    }
}

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (s < 0 || ioctl(s, SIOCSIFFLAGS, &ifr) != 0) SETUP_FAILED("loopback up: %s", strerror(errno));
    close(s);
}

static void set_stdio(const int fds[3]) {
    for (int i = 0; i < 3; i++)
        if (fds[i] != i && dup2(fds[i], i) < 0) SETUP_FAILED("stdio: %s", strerror(errno));
    for (int i = 0; i < 3; i++) {
        int again = 0;
        for (int j = 0; j < i; j++) again |= fds[j] == fds[i];
        if (fds[i] > 2 && !again) close(fds[i]);
    }
}

/* After pivot_root: a PTY from our own devpts, its slave on /dev/console and as our
 * controlling terminal and stdio, the master to the monitor (init._console). */
static void console(int sock) {
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), unlock = 0;
    unsigned n;
    char slave_path[64];
    struct winsize ws = {24, 80, 0, 0};
    if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &n) != 0)
        SETUP_FAILED("cannot make the console: %s", strerror(errno));
    ioctl(master, TIOCSWINSZ, &ws);
    snprintf(slave_path, sizeof slave_path, "/dev/pts/%u", n);
    int slave = open(slave_path, O_RDWR | O_NOCTTY);
    if (slave < 0 || mount(slave_path, "/dev/console", NULL, MS_BIND, NULL) != 0)
        SETUP_FAILED("cannot make the console: %s", strerror(errno));
    char cbuf[CMSG_SPACE(sizeof(int))] = {0}, byte = 'm';
    struct iovec iov = {&byte, 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != 1) SETUP_FAILED("cannot pass the console: %s", strerror(errno));
    close(master);
    close(sock);
    setsid();
    int fds[3] = {slave, slave, slave};
    set_stdio(fds);
    ioctl(0, TIOCSCTTY, 0);
}

static void rlimits(const struct init_cfg *c) {
    for (int i = 0; i < c->nrl; i++) {
        int res = (int)c->rl[3 * i];
        long long soft = c->rl[3 * i + 1], hard = c->rl[3 * i + 2];
        struct rlimit cur, want;
        if (getrlimit(res, &cur) != 0) continue;
        want.rlim_max = (hard < 0 || (cur.rlim_max != RLIM_INFINITY && (rlim_t)hard > cur.rlim_max))
                        ? cur.rlim_max : (rlim_t)hard;
        want.rlim_cur = (soft < 0 || (want.rlim_max != RLIM_INFINITY && (rlim_t)soft > want.rlim_max))
                        ? want.rlim_max : (rlim_t)soft;
        if (setrlimit(res, &want) != 0) SETUP_FAILED("setrlimit(%d): %s", res, strerror(errno));
    }
}

/* The executable the command names (a PATH search like execvp): 0 found, 126 exists but
 * is not executable, 127 missing. */
static int lookup(const char *cmd, const char *path) {
    struct stat st;
    int seen = 0;
    if (strchr(cmd, '/')) {
        if (stat(cmd, &st) != 0 || !S_ISREG(st.st_mode)) return 127;
        return access(cmd, X_OK) == 0 ? 0 : 126;
    }
    const char *p = path;
    char cand[PATH_MAX + NAME_MAX + 2];
    for (;;) {
        size_t len = strcspn(p, ":");
        snprintf(cand, sizeof cand, "%.*s/%s", len ? (int)len : 1, len ? p : ".", cmd);
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0) return 0;
            seen = 1;
        }
        if (!p[len]) break;
        p += len + 1;
    }
    return seen ? 126 : 127;
}

static int hexval(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

void load_seccomp(const char *hex) {
    size_t n = strlen(hex) / 2;
    unsigned char *bpf = malloc(n ? n : 1);
    for (size_t i = 0; bpf && i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) SETUP_FAILED("a malformed seccomp program");
        bpf[i] = (unsigned char)(hi << 4 | lo);
    }
    struct sock_fprog prog = {(unsigned short)(n / sizeof(struct sock_filter)), (struct sock_filter *)bpf};
    if (!bpf || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        SETUP_FAILED("seccomp(SET_MODE_FILTER): %s", strerror(errno));
}

void drop_bounding(unsigned long long keep, int last_cap) {
    for (int cap = 0; cap <= last_cap; cap++)
        if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1
            && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            SETUP_FAILED("prctl(CAPBSET_DROP %d): %s", cap, strerror(errno));
}

void switch_user(const struct init_cfg *c) {
    unsigned long long keep = c->caps;
    gid_t *groups = calloc((size_t)c->ngroups + 1, sizeof *groups);
    for (int i = 0; groups && i < c->ngroups; i++) groups[i] = c->groups[i];
    if (!groups || setgroups((size_t)c->ngroups, groups) != 0)
        SETUP_FAILED("setgroups: %s", strerror(errno));
    if (setresgid(c->gid, c->gid, c->gid) != 0) SETUP_FAILED("setresgid: %s", strerror(errno));
    if (setresuid(c->uid, c->uid, c->uid) != 0) SETUP_FAILED("setresuid: %s", strerror(errno));
    if (c->uid == 0) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2] = {
            {(unsigned)keep, (unsigned)keep, 0}, {(unsigned)(keep >> 32), (unsigned)(keep >> 32), 0}};
        if (syscall(SYS_capset, &h, d) != 0) SETUP_FAILED("capset: %s", strerror(errno));
    }
}

static void drop_privileges(const struct init_cfg *c, int last_cap) {
    if (!c->privileged) drop_bounding(c->caps, last_cap);
    switch_user(c);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        SETUP_FAILED("prctl(NO_NEW_PRIVS): %s", strerror(errno));
    if (c->seccomp_hex[0]) load_seccomp(c->seccomp_hex);
}

int cap_last_cap(void) {
    char buf[16] = {0};
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC), n = 40;
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf - 1) > 0) n = atoi(buf);
        close(fd);
    }
    return n > 0 && n < 64 ? n : 40;
}

void init_main(struct init_cfg *c, const int stdio[3], int err_w, int go_r) {
    init_errors(err_w, "container setup failed: ");
    if (c->netns[0]) {                         /* plugged into its network beforehand */
        int fd = open(c->netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
            SETUP_FAILED("joining the network namespace %s: %s", c->netns, strerror(errno));
        close(fd);
    }
    int last_cap = cap_last_cap();             /* the host's /proc: read before the pivot */
    if (!c->tty) set_stdio(stdio);
    if (sethostname(c->hostname, strlen(c->hostname)) != 0)
        SETUP_FAILED("sethostname(%s): %s", c->hostname, strerror(errno));
    if (!c->host_net) loopback_up();
    run_ops(c);
    if (c->tty) console(stdio[0]);
    char go = 0;
    if (read(go_r, &go, 1) != 1 || go != 'g')
        SETUP_FAILED("the monitor did not confirm the cgroup");
    close(go_r);
    rlimits(c);
    if (c->oom_score_adj) {
        char v[32];
        snprintf(v, sizeof v, "%d", c->oom_score_adj);
        write_file("/proc/self/oom_score_adj", v, 0, 0);   /* lowering it needs CAP_SYS_RESOURCE */
    }
    if (chdir(c->cwd) != 0) SETUP_FAILED("chdir %s: %s", c->cwd, strerror(errno));
    int found = lookup(c->argv[0], c->path);
    if (found)
        die(found, "exec: \"%s\": %s", c->argv[0],
            found == 126 ? "is not executable" : "executable file not found in $PATH");
    drop_privileges(c, last_cap);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int argc = 0;
    while (c->argv[argc]) argc++;
    char **argv = calloc((size_t)argc + 3, sizeof *argv);
    argv[0] = (char *)c->init_path;
    argv[1] = "--";
    memcpy(argv + 2, c->argv, (size_t)argc * sizeof *argv);
    execve(c->init_path, argv, c->envp);
    SETUP_FAILED("exec %s: %s", c->init_path, strerror(errno));
}
