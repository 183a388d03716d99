/* record.h — the record a parent writes of what it passes to the program it
 * starts, and how to read one (envprint.c, spawn_child.c).
 *
 * A list of NUL-terminated items, each starting with one tag character:
 *   A<argument>     argv, in order
 *   E<KEY=VALUE>    the environment, in order
 *   X<path>         the file name given to execve (the kernel's AT_EXECFN)
 *   P<path>         the program's own path, as /proc/self/exe names it
 */
#ifndef LDMATRIX_RECORD_H
#define LDMATRIX_RECORD_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list {
    const char **items;
    size_t count;
};

struct record {
    struct list argv, env;
    const char *execfn, *exe;
};

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

static bool push(struct list *list, const char *item, size_t capacity)
{
    if (list->count == capacity)
        return false;
    list->items[list->count++] = item;
    return true;
}

/* Splits the record into its parts; false on a malformed record. */
static bool parse_record(char *buffer, size_t size, struct record *out)
{
    size_t items = 0;
    for (size_t i = 0; i < size; i += strlen(buffer + i) + 1)
        items++;
    out->argv.items = calloc(items + 1, sizeof *out->argv.items);
    out->env.items = calloc(items + 1, sizeof *out->env.items);
    out->argv.count = out->env.count = 0;
    out->execfn = out->exe = NULL;
    if (out->argv.items == NULL || out->env.items == NULL)
        return false;
    for (size_t i = 0; i < size; i += strlen(buffer + i) + 1) {
        const char *item = buffer + i;
        switch (item[0]) {
        case 'A': push(&out->argv, item + 1, items); break;
        case 'E': push(&out->env, item + 1, items); break;
        case 'X': out->execfn = item + 1; break;
        case 'P': out->exe = item + 1; break;
        default: return false;
        }
    }
    return true;
}

#endif
