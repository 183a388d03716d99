/* envprint.c — the seed's environment printer, grown into a check of the whole start-up state.
 *
 * Without arguments it prints every environment entry whose key is exactly
 * PATH, as the seed's program does (that one compared only the first four
 * characters; this one compares the whole key), and checks that no key occurs
 * twice.
 *
 * With `--expect FILE` (always the last two arguments) it compares what it
 * received with FILE, the record its parent wrote of what it passed: a list of
 * NUL-terminated items, each starting with one tag character:
 *   A<argument>     argv, in order (including "--expect FILE")
 *   E<KEY=VALUE>    the environment, in order
 *   X<path>         the file name given to execve (the kernel's AT_EXECFN)
 *   P<path>         the program's own path, as /proc/self/exe names it
 * The environment must be what the parent passed, in order.  Entries whose key
 * a loader manages (LD_LIBRARY_PATH, NIX_LD, NIX_LD_LIBRARY_PATH, NIX_LD_*)
 * are compared apart from the others: the others in order among themselves
 * (what nix-ld 1.x's overrun damages), then the loader-managed ones in order
 * among themselves (what a loader may rename, add or rewrite: nix-ld 2.x
 * promises the program gets them as passed, its tests/ld-path-restore.c;
 * nix-ld 1.x renames NIX_LD_LIBRARY_PATH to LD_LIBRARY_PATH, or appends it to
 * LD_LIBRARY_PATH, and leaves that for the program and its children).
 *
 * Output (stdout), in this order:
 *   PATH=<value>                                 one line per PATH entry
 *   envprint: loader-managed entry "<entry>"     one line per key the loader manages
 *   envprint: <finding>                          one line per difference, e.g.
 *       environment entry 5 damaged: "<expected>" became "<received>"
 *       unexpected environment entry 7: "<entry>"
 *       missing environment entry 7: "<entry>"
 *       argv[1] damaged: "<expected>" became "<received>"
 *       AT_EXECFN damaged: "<expected>" became "<received>"
 *       /proc/self/exe damaged: "<expected>" became "<received>"
 *       duplicate key "<key>" in entry "<entry>"
 *       loader-managed entry 1 changed: "<expected>" became "<received>"
 *       unexpected loader-managed entry 1: "<entry>"
 *       missing loader-managed entry 1: "<entry>"
 *   LDMATRIX-CHECK: ok                                exit 0, or
 *   LDMATRIX-CHECK: env-corrupted: <first finding>    exit 1 (the environment's
 *       findings first, then argv, AT_EXECFN, /proc/self/exe, duplicates, and
 *       last the loader-managed entries), or
 *   LDMATRIX-CHECK: fail <reason>                     exit 1
 * Strings are printed with C escapes for control characters, quotes and
 * backslashes, so that every finding stays on one line.
 *
 * Build: gcc -O2 -o envprint envprint.c (record.h beside it)
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "record.h"

#define MAX_FINDINGS 64
#define FINDING_SIZE 8192

static char findings[MAX_FINDINGS][FINDING_SIZE];
static size_t finding_count;

/* Length of the key of a KEY=VALUE entry: everything before the first '='. */
static size_t key_length(const char *entry)
{
    const char *equals = strchr(entry, '=');
    return equals ? (size_t)(equals - entry) : strlen(entry);
}

static bool key_is(const char *entry, const char *key)
{
    size_t length = key_length(entry);
    return length == strlen(key) && strncmp(entry, key, length) == 0;
}

/* Keys the dynamic loader (glibc's ld.so, nix-ld) may add, rename or rewrite. */
static bool is_loader_managed(const char *entry)
{
    static const char prefix[] = "NIX_LD_";
    size_t length = key_length(entry);

    if (key_is(entry, "LD_LIBRARY_PATH") || key_is(entry, "NIX_LD") ||
        key_is(entry, "NIX_LD_LIBRARY_PATH"))
        return true;
    return length >= sizeof prefix - 1 && strncmp(entry, prefix, sizeof prefix - 1) == 0;
}

/* Appends `text` (at most `length` bytes) to `out` with control characters,
 * '"' and '\\' escaped, so that it stays on one line. */
static void escape_into(char *out, size_t size, const char *text, size_t length)
{
    size_t used = strlen(out);
    for (size_t i = 0; i < length && used + 5 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                          : c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
        if (named)
            used += (size_t)snprintf(out + used, size - used, "%s", named);
        else if (c < 0x20 || c == 0x7f)
            used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
        else
            out[used++] = (char)c, out[used] = '\0';
    }
}

static void append(char *out, size_t size, const char *text)
{
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s", text);
}

static void append_quoted(char *out, size_t size, const char *text)
{
    append(out, size, "\"");
    escape_into(out, size, text, strlen(text));
    append(out, size, "\"");
}

static char *new_finding(void)
{
    if (finding_count == MAX_FINDINGS)
        return NULL;
    char *finding = findings[finding_count++];
    finding[0] = '\0';
    return finding;
}

/* "<what> damaged: "<expected>" became "<received>"" */
static void damaged(const char *what, const char *expected, const char *received)
{
    char *f = new_finding();
    if (f == NULL)
        return;
    append(f, FINDING_SIZE, what);
    append(f, FINDING_SIZE, " damaged: ");
    append_quoted(f, FINDING_SIZE, expected);
    append(f, FINDING_SIZE, " became ");
    append_quoted(f, FINDING_SIZE, received);
}

static void entry_finding(const char *what, size_t index, const char *entry)
{
    char *f = new_finding();
    if (f == NULL)
        return;
    snprintf(f, FINDING_SIZE, "%s %zu: ", what, index);
    append_quoted(f, FINDING_SIZE, entry);
}

static void print_line(const char *prefix, const char *text)
{
    printf("%s%s\n", prefix, text);
}

static int fail(const char *reason, const char *detail)
{
    printf("LDMATRIX-CHECK: fail %s%s%s\n", reason, detail ? ": " : "", detail ? detail : "");
    return 1;
}

/* The environment's entries a loader manages (managed) or not (!managed), in order. */
static struct list checked_environment(const char **entries, size_t count, bool managed)
{
    struct list out = {calloc(count + 1, sizeof(char *)), 0};
    for (size_t i = 0; out.items != NULL && i < count; i++)
        if (is_loader_managed(entries[i]) == managed)
            out.items[out.count++] = entries[i];
    return out;
}

static void compare_environment(const struct list *expected, const struct list *received, bool managed)
{
    const char *entry = managed ? "loader-managed entry" : "environment entry";
    size_t i = 0;
    for (; i < expected->count && i < received->count; i++) {
        if (strcmp(expected->items[i], received->items[i]) != 0) {
            char what[64];
            snprintf(what, sizeof what, managed ? "%s %zu changed" : "%s %zu", entry, i);
            if (managed) {  /* "changed", not "damaged": a loader's edit, not an overrun */
                char *f = new_finding();
                if (f == NULL)
                    return;
                append(f, FINDING_SIZE, what);
                append(f, FINDING_SIZE, ": ");
                append_quoted(f, FINDING_SIZE, expected->items[i]);
                append(f, FINDING_SIZE, " became ");
                append_quoted(f, FINDING_SIZE, received->items[i]);
            } else {
                damaged(what, expected->items[i], received->items[i]);
            }
        }
    }
    char what[64];
    snprintf(what, sizeof what, "unexpected %s", entry);
    for (; i < received->count; i++)
        entry_finding(what, i, received->items[i]);
    snprintf(what, sizeof what, "missing %s", entry);
    for (; i < expected->count; i++)
        entry_finding(what, i, expected->items[i]);
}

static void compare_argv(const struct list *expected, int argc, char **argv)
{
    size_t received = (size_t)argc, i = 0;
    for (; i < expected->count && i < received; i++) {
        if (strcmp(expected->items[i], argv[i]) != 0) {
            char what[32];
            snprintf(what, sizeof what, "argv[%zu]", i);
            damaged(what, expected->items[i], argv[i]);
        }
    }
    for (; i < received; i++)
        entry_finding("unexpected argument", i, argv[i]);
    for (; i < expected->count; i++)
        entry_finding("missing argument", i, expected->items[i]);
}

static void compare_string(const char *what, const char *expected, const char *received)
{
    if (expected == NULL)
        return;
    if (received == NULL)
        received = "(none)";
    if (strcmp(expected, received) != 0)
        damaged(what, expected, received);
}

static void find_duplicates(char **envp)
{
    for (size_t i = 0; envp[i] != NULL; i++) {
        if (is_loader_managed(envp[i]))
            continue;
        size_t length = key_length(envp[i]);
        for (size_t j = 0; j < i; j++) {
            if (key_length(envp[j]) == length && strncmp(envp[i], envp[j], length) == 0) {
                char *f = new_finding();
                if (f == NULL)
                    return;
                append(f, FINDING_SIZE, "duplicate key \"");
                escape_into(f, FINDING_SIZE, envp[i], length);
                append(f, FINDING_SIZE, "\" in entry ");
                append_quoted(f, FINDING_SIZE, envp[i]);
                break;
            }
        }
    }
}

int main(int argc, char *argv[], char *envp[])
{
    const char *expect_path = NULL;
    struct list expected_managed = {NULL, 0}, received_managed = {NULL, 0};
    size_t env_count = 0;
    char line[FINDING_SIZE];

    if (argc >= 3 && strcmp(argv[argc - 2], "--expect") == 0)
        expect_path = argv[argc - 1];
    else if (argc > 1)
        return fail("usage: envprint [--expect FILE]; got argument", argv[1]);
    while (envp[env_count] != NULL)
        env_count++;

    /* 1. The seed's output: every PATH entry, in environment order; then what the
     *    loader manages (checked last, below). */
    for (size_t i = 0; i < env_count; i++) {
        if (key_is(envp[i], "PATH")) {
            line[0] = '\0';
            escape_into(line, sizeof line, envp[i], strlen(envp[i]));
            print_line("", line);
        }
    }
    for (size_t i = 0; i < env_count; i++) {
        if (is_loader_managed(envp[i])) {
            line[0] = '\0';
            append(line, sizeof line, "loader-managed entry ");
            append_quoted(line, sizeof line, envp[i]);
            print_line("envprint: ", line);
        }
    }

    /* 2. With --expect: everything received, against the parent's record. */
    if (expect_path != NULL) {
        size_t size = 0;
        struct record record;
        char *buffer = read_file(expect_path, &size);
        if (buffer == NULL) {
            printf("LDMATRIX-CHECK: fail cannot read expect file %s: %s\n", expect_path, strerror(errno));
            return 1;
        }
        if (!parse_record(buffer, size, &record))
            return fail("malformed expect file", expect_path);
        struct list expected = checked_environment(record.env.items, record.env.count, false);
        struct list received = checked_environment((const char **)envp, env_count, false);
        expected_managed = checked_environment(record.env.items, record.env.count, true);
        received_managed = checked_environment((const char **)envp, env_count, true);
        if (expected.items == NULL || received.items == NULL || expected_managed.items == NULL ||
            received_managed.items == NULL)
            return fail("out of memory", NULL);
        compare_environment(&expected, &received, false);
        compare_argv(&record.argv, argc, argv);
        compare_string("AT_EXECFN", record.execfn, (const char *)getauxval(AT_EXECFN));
        char exe[PATH_MAX + 1];
        ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX);
        exe[n < 0 ? 0 : n] = '\0';
        compare_string("/proc/self/exe", record.exe, n < 0 ? NULL : exe);
    }

    /* 3. A key that occurs twice is corruption, expected or not. */
    find_duplicates(envp);

    /* 4. Last, the loader-managed entries against what the parent passed. */
    if (expect_path != NULL)
        compare_environment(&expected_managed, &received_managed, true);

    /* 5. Every finding, then one check line: the first finding is the evidence. */
    for (size_t i = 0; i < finding_count; i++)
        print_line("envprint: ", findings[i]);
    if (finding_count > 0) {
        print_line("LDMATRIX-CHECK: env-corrupted: ", findings[0]);
        return 1;
    }
    printf("LDMATRIX-CHECK: ok\n");
    return 0;
}
