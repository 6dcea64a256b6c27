/* Isolation probes, run INSIDE a container.  Every probe is harmless if it succeeds:
 * it sets the clock to the value it has, mounts a tmpfs on a directory inside the
 * container, sets the host name to the one it has, and so on.  Prints "denied <errno>" or
 * "ALLOWED" (or "enosys" for clone3) and exits 0.  Build: gcc -static -O1 -o probe probe.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

static int report(long rc) {
    if (rc < 0) printf("denied %d %s\n", errno, strerror(errno));
    else printf("ALLOWED\n");
    return 0;
}

int main(int argc, char **argv) {
    const char *p = argc > 1 ? argv[1] : "";
    if (!strcmp(p, "mount")) { mkdir("/probe-mnt", 0700);
        return report(mount("none", "/probe-mnt", "tmpfs", 0, "size=4k")); }
    if (!strcmp(p, "clock")) { struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
        return report(clock_settime(CLOCK_REALTIME, &ts)); }
    if (!strcmp(p, "sethostname")) { char h[256] = {0}; gethostname(h, sizeof h - 1);
        return report(sethostname(h, strlen(h))); }
    if (!strcmp(p, "unshare")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(p, "userns")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(p, "setns")) { int fd = open("/proc/1/ns/uts", O_RDONLY);
        return report(fd < 0 ? fd : setns(fd, 0)); }
    if (!strcmp(p, "ptrace")) return report(ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(p, "keyctl")) return report(syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3, 0));
    if (!strcmp(p, "personality")) return report(personality(ADDR_NO_RANDOMIZE) < 0 ? -1 : 0);
    if (!strcmp(p, "clone3")) { long rc = syscall(435, NULL, 0);
        if (rc < 0 && errno == ENOSYS) { printf("enosys\n"); return 0; }
        return report(rc); }
    if (!strcmp(p, "device") && argc > 3) { /* mknod a block device, then try to read it */
        unsigned maj = atoi(argv[2]), min = atoi(argv[3]);
        if (mknod("/probe-dev", S_IFBLK | 0600, makedev(maj, min)) < 0) return report(-1);
        int fd = open("/probe-dev", O_RDONLY); return report(fd); }
    printf("unknown probe\n");
    return 2;
}
