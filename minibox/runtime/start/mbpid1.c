/* `minimon --pid1`: a build RUN step's PID 1 (the compiled twin of sandbox/process.py _pid1).
 *
 * The build sandbox posix_spawns this program (vfork: no copy of a Python process) right
 * after unshare(CLONE_NEWPID), so it is PID 1 of the step's PID namespace, with the step's
 * output pipe on stdout and stderr, a new session (POSIX_SPAWN_SETSID),
 * the plan on fd 3 (a memfd; process.py _encode writes it) and the close-on-exec error pipe
 * on fd 4 (stdin: /dev/null, opened here read-only as the forked PID 1 does).  Every
 * decision is in the plan; here they are only executed: a mount namespace of our own, the
 * bounding set (cut to the plan's capabilities) and ambient capabilities, the filesystem
 * steps (/proc, the binds, the masks, pivot_root: run_ops, rootfs.apply's twin), chdir,
 * the seccomp filter (while root with a full effective set: no_new_privs stays off),
 * groups and ids (root keeps the plan's capabilities), pdeathsig again, umask 022, default
 * signals, exec of the init.  That is process.py _pid1's order but for the bounding set,
 * dropped before the mounts rather than between the masks and the pivot (it does not
 * bear on them; the end state is the same).
 * A failure is written to the error pipe as "<code> <message>" (process.py drops the code).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "minimon.h"

#define PLAN_FD 3
#define ERR_FD 4

/* The plan (process.py _encode): root, ops, cwd, init path, the init's argv, env, ids,
 * capabilities, seccomp filter. */
static int parse(struct spec *s, struct init_cfg *c) {
    if (strcmp(sp_str(s), "MBP1")) return -1;
    c->root = sp_str(s);
    if (sp_ops(s, c) != 0) return -1;
    c->cwd = sp_str(s); c->init_path = sp_str(s);
    if (sp_process(s, c) != 0) return -1;
    c->seccomp_hex = sp_str(s);
    return strcmp(sp_str(s), "END") || s->bad ? -1 : 0;
}

/* The permitted set: what the plan's capabilities are cut to (process.py: DEFAULT_CAPS &
 * capget()[1]). */
static unsigned long long permitted(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) die(1, "capget: %s", strerror(errno));
    return (unsigned long long)d[0].permitted | (unsigned long long)d[1].permitted << 32;
}

int pid1_main(void) {
    struct init_cfg c = {0};
    struct spec s = {0};
    size_t len = 0;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    fcntl(ERR_FD, F_SETFD, FD_CLOEXEC);
    init_errors(ERR_FD, "");
    syscall(SYS_close_range, ERR_FD + 1, ~0U, 0);  /* nothing else of the sandbox's */
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) != 0) die(1, "/dev/null: %s", strerror(errno));
    if (null != 0) close(null);
    char *buf = read_all(PLAN_FD, &len);
    close(PLAN_FD);
    s.p = buf;
    s.end = buf ? buf + len : NULL;
    if (!buf || parse(&s, &c) != 0) die(1, "a malformed RUN plan");
    if (unshare(CLONE_NEWNS) != 0) die(1, "unshare(CLONE_NEWNS): %s", strerror(errno));
    c.caps &= permitted();
    drop_bounding(c.caps, cap_last_cap());         /* the host's /proc: before the pivot */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    run_ops(&c);                                   /* /proc, binds, masks, pivot_root */
    if (chdir(c.cwd) != 0) die(1, "%s: %s", c.cwd, strerror(errno));
    load_seccomp(c.seccomp_hex);                   /* needs CAP_SYS_ADMIN: no_new_privs is off */
    switch_user(&c);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);     /* a uid change cleared it */
    umask(022);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(c.init_path, c.argv, c.envp);
    die(127, "%s: %s", c.init_path, strerror(errno));
}
