/* spawn_child.c — a prebuilt program that starts another program, as VS Code's
 * server (a prebuilt node) starts a shell, git and its extensions' tools.
 *
 * Usage: spawn-child [--no-expect] CHILD [ARGS...] --expect FILE
 *
 * FILE is the record its own parent (the launcher) wrote of what it passed
 * (record.h).  spawn-child passes its environment on to CHILD unchanged, as a
 * program that inherits it does; what it means to pass is what its parent
 * gave it, so CHILD's record says that: CHILD is run as
 * `CHILD [ARGS...] --expect CHILDFILE` (CHILDFILE: spawn-child.child.expect in
 * $TMPDIR, /tmp when unset), CHILDFILE holding argv, FILE's environment, CHILD
 * as the file name given to execve and its real path.  CHILD (an absolute
 * path) is the start-up printer, or a program like it: what it received,
 * against that record, is the verdict.  Whatever a loader left behind in
 * spawn-child's own environment (nix-ld 1.x's rename of NIX_LD_LIBRARY_PATH)
 * is what its child gets, and what the child's check finds.
 *
 * CHILD's output is relayed line by line with "child| " before each line
 * (stdout to stdout, stderr to stderr), so that the only check line at the
 * start of a line is spawn-child's own:
 *   LDMATRIX-CHECK: ok                         CHILD passed its check; exit 0
 *   LDMATRIX-CHECK: env-corrupted: child: ...  CHILD's finding; exit 1
 *   LDMATRIX-CHECK: fail child ...             CHILD did not run as it should
 *       (its exit status and first line of stderr); exit 1, or CHILD's own
 *       status when that is 126 or 127 (the loader's "cannot run it")
 * A CHILD killed by a signal makes spawn-child exit 128 + the signal, as a
 * shell does.  A CHILD that cannot be spawned gives
 * "spawn-child: failed to spawn CHILD: <error>" on stderr and exit 127.
 *
 * With --no-expect CHILD is a real program: run as `CHILD [ARGS...]` with its
 * output passed through as it is, and spawn-child exits with its status.
 *
 * Build: gcc -O2 -o spawn-child spawn_child.c (record.h beside it)
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record.h"

#define PREFIX "child| "
#define CHECK "LDMATRIX-CHECK: "

extern char **environ;

struct relay {
    int fd;
    FILE *out;
    char line[65536];
    size_t used;
    bool at_start;  /* the next byte begins a line */
};

static char check_line[8192];  /* CHILD's last check line */
static char first_error[8192];  /* CHILD's first line of stderr */

static int usage(void)
{
    fprintf(stderr, "usage: spawn-child [--no-expect] CHILD [ARGS...] --expect FILE\n");
    return 2;
}

static bool write_item(FILE *out, char tag, const char *text)
{
    return fputc(tag, out) != EOF && fputs(text, out) != EOF && fputc('\0', out) != EOF;
}

/* CHILD's record: what it is passed, and the environment spawn-child was given. */
static bool write_child_record(const char *path, char **argv, const struct list *env, const char *child)
{
    char real[PATH_MAX];
    FILE *out = fopen(path, "wb");
    bool ok = out != NULL;
    for (size_t i = 0; ok && argv[i] != NULL; i++)
        ok = write_item(out, 'A', argv[i]);
    for (size_t i = 0; ok && i < env->count; i++)
        ok = write_item(out, 'E', env->items[i]);
    ok = ok && write_item(out, 'X', child);
    ok = ok && write_item(out, 'P', realpath(child, real) ? real : child);
    if (out != NULL && fclose(out) != 0)
        ok = false;
    return ok;
}

/* One complete line of CHILD's output: remembered, and relayed with the prefix. */
static void line_done(struct relay *r)
{
    r->line[r->used] = '\0';
    if (r->out == stdout && strncmp(r->line, CHECK, strlen(CHECK)) == 0)
        snprintf(check_line, sizeof check_line, "%.*s", (int)sizeof check_line - 1, r->line + strlen(CHECK));
    if (r->out == stderr && first_error[0] == '\0' && r->line[0] != '\0')
        snprintf(first_error, sizeof first_error, "%.*s", (int)sizeof first_error - 1, r->line);
    fprintf(r->out, PREFIX "%s\n", r->line);
    fflush(r->out);
    r->used = 0;
}

/* Reads what is there; false at end of file. */
static bool relay_some(struct relay *r)
{
    char buffer[4096];
    ssize_t got = read(r->fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR)
        return true;
    if (got <= 0) {
        if (r->used > 0)
            line_done(r);
        return false;
    }
    for (ssize_t i = 0; i < got; i++) {
        if (buffer[i] == '\n' || r->used == sizeof r->line - 1)
            line_done(r);
        if (buffer[i] != '\n')
            r->line[r->used++] = buffer[i];
    }
    return true;
}

static pid_t spawn(const char *child, char **argv, int out[2], int err[2], bool relay)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (relay) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    }
    execve(child, argv, environ);
    fprintf(stderr, "spawn-child: failed to spawn %s: %s\n", child, strerror(errno));
    _exit(127);
}

int main(int argc, char **argv)
{
    bool printer = true;
    int first = 1;

    if (argc < 4 || strcmp(argv[argc - 2], "--expect") != 0)
        return usage();
    if (strcmp(argv[1], "--no-expect") == 0) {
        printer = false;
        first = 2;
    }
    if (first >= argc - 2)
        return usage();
    const char *child = argv[first];
    if (strchr(child, '/') == NULL) {
        fprintf(stderr, "spawn-child: CHILD must be a path: %s\n", child);
        return 2;
    }

    size_t size = 0;
    struct record own;
    char *buffer = read_file(argv[argc - 1], &size);
    if (buffer == NULL) {
        printf(CHECK "fail cannot read expect file %s: %s\n", argv[argc - 1], strerror(errno));
        return 1;
    }
    if (!parse_record(buffer, size, &own)) {
        printf(CHECK "fail malformed expect file %s\n", argv[argc - 1]);
        return 1;
    }

    /* CHILD's argv: its arguments, and for the printer its record. */
    char record_path[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(record_path, sizeof record_path, "%s/spawn-child.child.expect", tmp && *tmp ? tmp : "/tmp");
    int count = argc - 2 - first;
    char **child_argv = calloc((size_t)count + 3, sizeof *child_argv);
    if (child_argv == NULL)
        return 125;
    for (int i = 0; i < count; i++)
        child_argv[i] = argv[first + i];
    if (printer) {
        child_argv[count] = "--expect";
        child_argv[count + 1] = record_path;
        if (!write_child_record(record_path, child_argv, &own.env, child)) {
            printf(CHECK "fail cannot write %s: %s\n", record_path, strerror(errno));
            return 1;
        }
    }

    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (printer && (pipe(out) != 0 || pipe(err) != 0)) {
        perror("spawn-child: pipe");
        return 125;
    }
    pid_t pid = spawn(child, child_argv, out, err, printer);
    if (pid < 0) {
        perror("spawn-child: fork");
        return 125;
    }
    if (printer) {
        struct relay relays[2] = {{out[0], stdout, {0}, 0, true}, {err[0], stderr, {0}, 0, true}};
        close(out[1]), close(err[1]);
        int open_count = 2;
        struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        while (open_count > 0) {
            if (poll(fds, 2, -1) < 0 && errno != EINTR)
                break;
            for (int i = 0; i < 2; i++) {
                if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_some(&relays[i])) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    open_count--;
                }
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        printf(CHECK "fail child %s killed by signal %d (%s)\n", child, sig, strsignal(sig));
        return 128 + sig;
    }
    int code = WEXITSTATUS(status);
    if (!printer)
        return code;
    if (code == 0 && strcmp(check_line, "ok") == 0) {
        printf(CHECK "ok\n");
        return 0;
    }
    if (strncmp(check_line, "env-corrupted: ", 15) == 0) {
        printf(CHECK "env-corrupted: child %s: %s\n", child, check_line + 15);
        return 1;
    }
    printf(CHECK "fail child %s did not run as it should: exit %d: %s\n", child, code,
           check_line[0] ? check_line : first_error[0] ? first_error : "(no output)");
    return code == 126 || code == 127 ? code : 1;
}
