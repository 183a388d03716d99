/* cell_user.c - starts a cell's program as the user a cell stands for: a NixOS user, uid 1000,
 * gid 100 ("users"), no supplementary groups, no capabilities (the bounding set emptied too) and
 * no new privileges.
 *
 * bubblewrap is started as root without a user namespace, so that the cell's processes are
 * uid 1000 on the host as well (with a user namespace made by root, uid 1000 inside is uid 0
 * outside, and uid 0 may still write /proc/sys and the like without any capability). bubblewrap
 * sets up the tree and runs this program first; it drops everything and execs the cell's argv
 * with the environment untouched (same entries, same order). Statically linked, so it runs in
 * every root, the NixOS-like one included. Built and cached by harness/root/cell_user.py.
 *
 * Each --own DIR (a directory bubblewrap made for the cell: its HOME, a tmpfs, and the directories
 * in it) is given to UID:GID first, with the one capability kept for that (CAP_CHOWN), as a NixOS
 * user owns their home; a symbolic link is not followed.
 *
 * Usage: cell-user UID GID [--own DIR]... PROGRAM [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "cell-user: %s: %s\n", what, strerror(errno));
    return 125;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fputs("usage: cell-user UID GID [--own DIR]... PROGRAM [ARGS...]\n", stderr);
        return 125;
    }
    uid_t uid = (uid_t)strtoul(argv[1], NULL, 10);
    gid_t gid = (gid_t)strtoul(argv[2], NULL, 10);
    if (uid == 0 || gid == 0) {
        fputs("cell-user: refusing to run a cell as root\n", stderr);
        return 125;
    }
    int first = 3;
    while (first + 1 < argc && strcmp(argv[first], "--own") == 0) {
        struct stat st;
        if (lstat(argv[first + 1], &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "cell-user: --own %s: not a directory\n", argv[first + 1]);
            return 125;
        }
        if (lchown(argv[first + 1], uid, gid) != 0)
            return fail("chown of a directory made for the cell");
        first += 2;
    }
    if (first >= argc) {
        fputs("usage: cell-user UID GID [--own DIR]... PROGRAM [ARGS...]\n", stderr);
        return 125;
    }
    for (int cap = 0;; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
            continue;
        if (errno == EINVAL) /* past the last capability */
            break;
        return fail("dropping the capability bounding set");
    }
    if (setgroups(0, NULL) != 0)
        return fail("setgroups");
    if (setresgid(gid, gid, gid) != 0)
        return fail("setresgid");
    if (setresuid(uid, uid, uid) != 0)
        return fail("setresuid");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail("no_new_privs");
    execvp(argv[first], argv + first);
    /* the shape bubblewrap reports an exec failure in (and its exit status) */
    fprintf(stderr, "cell-user: execvp %s: %s\n", argv[first], strerror(errno));
    return 1;
}
