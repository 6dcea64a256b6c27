/* Network probes run INSIDE a build step or a container.  Harmless whatever happens: each one
 * only opens a connection and closes it, or lists interfaces.  Prints one line and exits 0.
 *   netprobe tcp HOST PORT       "connected" or "refused <errno> <text>"
 *   netprobe abstract NAME       the same, for the abstract unix socket "\0NAME"
 * Build: gcc -static -O1 -o netprobe netprobe.c */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int report(int fd, int rc) {
    if (rc == 0) printf("connected\n");
    else printf("refused %d %s\n", errno, strerror(errno));
    if (fd >= 0) close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "tcp")) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) { printf("bad address\n"); return 2; }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {.tv_sec = 3};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return report(fd, connect(fd, (struct sockaddr *)&a, sizeof a));
    }
    if (argc == 3 && !strcmp(argv[1], "abstract")) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t n = strlen(argv[2]);
        if (n + 1 > sizeof a.sun_path) { printf("name too long\n"); return 2; }
        memcpy(a.sun_path + 1, argv[2], n);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        return report(fd, connect(fd, (struct sockaddr *)&a,
                                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)));
    }
    fprintf(stderr, "usage: netprobe tcp HOST PORT | netprobe abstract NAME\n");
    return 2;
}
