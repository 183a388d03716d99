/* envprint.c — the seed's environment printer, with a check.
 *
 * Without arguments it prints every environment entry whose key is exactly
 * PATH, as the seed's program does (that one compared only the first four
 * characters; this one compares the whole key), and checks that no key occurs
 * twice.
 *
 * With `--expect FILE` it also compares its whole environment with FILE, a
 * list of NUL-separated KEY=VALUE entries written by the parent (spawn-env,
 * spawn-inherit): the entries must be equal as multisets.  Keys the dynamic
 * loader manages are ignored on both sides: LD_LIBRARY_PATH, NIX_LD,
 * NIX_LD_LIBRARY_PATH and every key starting with NIX_LD_.
 *
 * Output (stdout), in this order:
 *   PATH=<value>                               one line per PATH entry
 *   envprint: loader-managed entry "<entry>"   one line per key the loader manages
 *                                              (what nix-ld left or restored for the program)
 *   envprint: unexpected entry "<entry>"       in the environment, not expected
 *   envprint: missing entry "<entry>"          expected, not in the environment
 *   envprint: duplicate key "<key>" in entry "<entry>"
 *   LDMATRIX-CHECK: ok                                       exit 0, or
 *   LDMATRIX-CHECK: env-corrupted: <first finding, as above> exit 1, or
 *   LDMATRIX-CHECK: fail <reason>                            exit 1
 * The last line names the first unexpected entry if there is one, else the
 * first missing entry, else the first duplicate key.  Entries are printed
 * with C escapes for control characters, quotes and backslashes, so every
 * finding stays on one line.
 *
 * Build: gcc -O2 -o envprint envprint.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entries {
    char **items;
    size_t count;
};

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

/* Prints `text` (at most `length` bytes) with control characters, '"' and
 * '\\' escaped, so that it stays on one line. */
static void print_escaped(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        switch (c) {
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default:
            if (c < 0x20 || c == 0x7f)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
    }
}

static void print_finding(const char *prefix, const char *what, const char *entry)
{
    printf("%s%s \"", prefix, what);
    print_escaped(entry, strlen(entry));
    fputs("\"\n", stdout);
}

static void print_duplicate(const char *prefix, const char *entry)
{
    printf("%sduplicate key \"", prefix);
    print_escaped(entry, key_length(entry));
    fputs("\" in entry \"", stdout);
    print_escaped(entry, strlen(entry));
    fputs("\"\n", stdout);
}

static int fail(const char *reason, const char *detail)
{
    printf("LDMATRIX-CHECK: fail %s%s%s\n", reason, detail ? ": " : "", detail ? detail : "");
    return 1;
}

/* Reads the whole file into a NUL-terminated buffer; *size excludes the
 * terminator.  Returns NULL with errno set on failure. */
static char *read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    char *buffer = NULL;
    size_t used = 0, capacity = 0;

    if (file == NULL)
        return NULL;
    for (;;) {
        if (capacity - used < 4096) {
            size_t new_capacity = capacity ? capacity * 2 : 65536;
            char *grown = realloc(buffer, new_capacity + 1);
            if (grown == NULL) {
                free(buffer);
                fclose(file);
                errno = ENOMEM;
                return NULL;
            }
            buffer = grown;
            capacity = new_capacity;
        }
        size_t got = fread(buffer + used, 1, capacity - used, file);
        used += got;
        if (got == 0) {
            int failed = ferror(file);
            fclose(file);
            if (failed) {
                free(buffer);
                errno = EIO;
                return NULL;
            }
            break;
        }
    }
    buffer[used] = '\0';
    *size = used;
    return buffer;
}

/* Splits a buffer of NUL-separated entries (the last NUL optional, empty
 * entries skipped) into an array of pointers into the buffer. */
static bool split_entries(char *buffer, size_t size, struct entries *out)
{
    size_t count = 0;
    for (size_t i = 0; i < size; i += strlen(buffer + i) + 1)
        if (buffer[i] != '\0')
            count++;
    out->items = calloc(count ? count : 1, sizeof *out->items);
    out->count = 0;
    if (out->items == NULL)
        return false;
    for (size_t i = 0; i < size; i += strlen(buffer + i) + 1)
        if (buffer[i] != '\0')
            out->items[out->count++] = buffer + i;
    return true;
}

int main(int argc, char *argv[], char *envp[])
{
    const char *expect_path = NULL;
    const char *first_unexpected = NULL, *first_missing = NULL, *first_duplicate = NULL;
    struct entries expected = {NULL, 0};
    char *expect_buffer = NULL;
    bool *used = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
            expect_path = argv[++i];
        else
            return fail("usage: envprint [--expect FILE]; got argument", argv[i]);
    }

    /* 1. The seed's output: every PATH entry, in environment order; then what the
     *    loader manages, which is not checked but shown. */
    for (size_t i = 0; envp[i] != NULL; i++) {
        if (key_is(envp[i], "PATH")) {
            print_escaped(envp[i], strlen(envp[i]));
            putchar('\n');
        }
    }
    for (size_t i = 0; envp[i] != NULL; i++)
        if (is_loader_managed(envp[i]))
            print_finding("envprint: ", "loader-managed entry", envp[i]);

    /* 2. With --expect: the environment and the file, compared as multisets. */
    if (expect_path != NULL) {
        size_t size = 0;
        expect_buffer = read_file(expect_path, &size);
        if (expect_buffer == NULL) {
            printf("LDMATRIX-CHECK: fail cannot read expect file %s: %s\n", expect_path, strerror(errno));
            return 1;
        }
        if (!split_entries(expect_buffer, size, &expected))
            return fail("out of memory", NULL);
        used = calloc(expected.count ? expected.count : 1, sizeof *used);
        if (used == NULL)
            return fail("out of memory", NULL);
        for (size_t j = 0; j < expected.count; j++)
            if (is_loader_managed(expected.items[j]))
                used[j] = true; /* ignored: never reported missing */

        for (size_t i = 0; envp[i] != NULL; i++) {
            bool matched = false;
            if (is_loader_managed(envp[i]))
                continue;
            for (size_t j = 0; j < expected.count && !matched; j++) {
                if (!used[j] && strcmp(envp[i], expected.items[j]) == 0) {
                    used[j] = true;
                    matched = true;
                }
            }
            if (!matched) {
                print_finding("envprint: ", "unexpected entry", envp[i]);
                if (first_unexpected == NULL)
                    first_unexpected = envp[i];
            }
        }
        for (size_t j = 0; j < expected.count; j++) {
            if (!used[j]) {
                print_finding("envprint: ", "missing entry", expected.items[j]);
                if (first_missing == NULL)
                    first_missing = expected.items[j];
            }
        }
    }

    /* 3. A key that occurs twice is corruption, expected or not. */
    for (size_t i = 0; envp[i] != NULL; i++) {
        if (is_loader_managed(envp[i]))
            continue;
        size_t length = key_length(envp[i]);
        for (size_t j = 0; j < i; j++) {
            if (key_length(envp[j]) == length && strncmp(envp[i], envp[j], length) == 0) {
                print_duplicate("envprint: ", envp[i]);
                if (first_duplicate == NULL)
                    first_duplicate = envp[i];
                break;
            }
        }
    }

    /* 4. One check line: the first finding is the evidence. */
    int status = 1;
    if (first_unexpected != NULL)
        print_finding("LDMATRIX-CHECK: env-corrupted: ", "unexpected entry", first_unexpected);
    else if (first_missing != NULL)
        print_finding("LDMATRIX-CHECK: env-corrupted: ", "missing entry", first_missing);
    else if (first_duplicate != NULL)
        print_duplicate("LDMATRIX-CHECK: env-corrupted: ", first_duplicate);
    else {
        printf("LDMATRIX-CHECK: ok\n");
        status = 0;
    }

    free(used);
    free(expected.items);
    free(expect_buffer);
    return status;
}
