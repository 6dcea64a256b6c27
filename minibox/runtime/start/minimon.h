/* Shared by the compiled monitor's parts (see minimon.py for how they are built):
 *   minimon.c  the long-lived monitor (log copying, attach, ack, exit record);
 *   mbstart.c  `minimon --start`: reads a start spec (StartPlan.encode), clones the container's
 *              init, puts it in its cgroup, reports to the worker, then runs the monitor;
 *   mbinit.c   the container's init from clone() to exec of tini (the rootfs steps of the
 *              spec, the console, rlimits, user, capabilities, seccomp);
 *   mbpid1.c   `minimon --pid1`: a build RUN step's PID 1 (the sandbox's plan, executed with
 *              mbinit.c's steps, up to the exec of tini).
 */
#ifndef MINIMON_H
#define MINIMON_H

#include <stddef.h>

/* The start spec: NUL-terminated tokens (see minibox/wire/runtime.py StartPlan.encode for the order). */
struct spec {
    char *p, *end;
    int bad;                 /* read past the end, or a malformed number */
};

const char *sp_str(struct spec *s);
long long sp_int(struct spec *s);
unsigned long long sp_u64(struct spec *s);
char **str_list(struct spec *s, int n);    /* n strings, then NULL */
char *read_all(int fd, size_t *len);       /* until EOF; NULL without memory */

/* One step of the container's filesystem set-up (rootfs.OP_FIELDS, in that order). */
struct op {
    const char *code, *src, *target, *join, *fstype, *data, *fail;
    unsigned long flags;
    unsigned long mode;
};

/* What the init needs; filled by mbstart.c from the spec (by mbpid1.c from a RUN's plan). */
struct init_cfg {
    const char *hostname, *root, *cwd, *path, *init_path, *seccomp_hex;
    const char *netns;       /* a network namespace made beforehand to join, or "" */
    int tty, host_net;
    int nops;
    struct op *ops;
    char **argv;             /* NULL-terminated, argv[0] is the command */
    char **envp;             /* NULL-terminated */
    unsigned uid, gid;
    int ngroups;
    unsigned *groups;
    unsigned long long caps;
    int privileged, no_new_privs;
    int nrl;
    long long *rl;           /* nrl triples: resource, soft, hard (-1: the current hard) */
    int oom_score_adj;
};

/* In the cloned child: never returns.  stdio: stdin/stdout/stderr fds, or with tty the
 * console socket in stdio[0]. */
void init_main(struct init_cfg *c, const int stdio[3], int err_w, int go_r);

/* Parts of a spec both modes read (mbstart.c): the steps (count, then OP_FIELDS each);
 * the process (argc, argv, envc, env, uid, gid, ngroups, groups, capabilities).  0 or -1. */
int sp_ops(struct spec *s, struct init_cfg *c);
int sp_process(struct spec *s, struct init_cfg *c);

/* mbinit.c's parts, shared with mbpid1.c.  A failure is written to the error pipe set by
 * init_errors as "<code> <prefix><message>" and the process exits with that code. */
void init_errors(int err_w, const char *prefix);
void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
void run_ops(const struct init_cfg *c);                       /* rootfs.apply's twin */
int cap_last_cap(void);
void drop_bounding(unsigned long long keep, int last_cap);    /* the bounding set */
void switch_user(const struct init_cfg *c);    /* groups, gid, uid; root keeps c->caps */
void load_seccomp(const char *hex);

/* `minimon --pid1` (mbpid1.c): a build RUN step's PID 1; never returns. */
int pid1_main(void);

/* The monitor proper (minimon.c), entered with the same arguments as `minimon DIR ...`. */
int monitor_main(int argc, char **argv);

#endif
