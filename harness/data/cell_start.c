/* cell_start.c - how the sandbox runner starts bubblewrap for a cell: joins the cell's cgroup,
 * sets its resource limits and execs the command, in one small static program (what
 * `sh -c 'echo $$ > cgroup.procs && exec prlimit ... -- COMMAND'` did in two dynamically linked
 * ones). Joining before the exec means everything the command starts is in the cgroup from its
 * first fork. Built and cached by harness/root/cell_user.py; used by harness/root/limits.py.
 *
 * Usage: cell-start [-g CGROUP_PROCS_FILE]... [-f FILE_SIZE_BYTES] [-v ADDRESS_SPACE_BYTES] -- PROGRAM [ARGS...]
 * Core dumps are always off (RLIMIT_CORE 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
    fprintf(stderr, "cell-start: %s %s: %s\n", what, arg, strerror(errno));
    return 125;
}

static int limit(int resource, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text) {
        errno = EINVAL;
        return -1;
    }
    struct rlimit rl = {(rlim_t)value, (rlim_t)value};
    return setrlimit(resource, &rl);
}

int main(int argc, char **argv)
{
    int i = 1;
    char pid[32];
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) {
            fputs("usage: cell-start [-g PROCS]... [-f BYTES] [-v BYTES] -- PROGRAM [ARGS...]\n", stderr);
            return 125;
        }
        const char *opt = argv[i], *arg = argv[i + 1];
        if (strcmp(opt, "-g") == 0) {
            int fd = open(arg, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, pid, strlen(pid)) < 0)
                return fail("joining the cgroup", arg);
            close(fd);
        } else if (strcmp(opt, "-f") == 0) {
            if (limit(RLIMIT_FSIZE, arg) != 0)
                return fail("RLIMIT_FSIZE", arg);
        } else if (strcmp(opt, "-v") == 0) {
            if (limit(RLIMIT_AS, arg) != 0)
                return fail("RLIMIT_AS", arg);
        } else {
            fprintf(stderr, "cell-start: unknown option %s\n", opt);
            return 125;
        }
    }
    if (i + 1 >= argc) {
        fputs("cell-start: no command after --\n", stderr);
        return 125;
    }
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return fail("RLIMIT_CORE", "0");
    execvp(argv[i + 1], argv + i + 1);
    return fail("execvp", argv[i + 1]);
}
