/* dlopen_execstack.c — dlopen() a library that asks for an executable stack.
 *
 * Many prebuilt plugins (old JNI libraries, some audio and game engines) were
 * linked with an executable stack.  glibc >= 2.41 refuses to dlopen() them:
 * "cannot enable executable stack as shared object requires".  This program
 * carries such a library inside itself (execstack_lib.c, built with
 * `-z execstack` to /tmp/ldmatrix-execstack.so and embedded with .incbin),
 * writes it to $TMPDIR, dlopen()s it and calls it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__asm__(".section .rodata\n"
        ".global ldmatrix_embedded_so\n"
        "ldmatrix_embedded_so:\n"
        ".incbin \"/tmp/ldmatrix-execstack.so\"\n"
        ".global ldmatrix_embedded_so_end\n"
        "ldmatrix_embedded_so_end:\n"
        ".previous\n");
extern const unsigned char ldmatrix_embedded_so[];
extern const unsigned char ldmatrix_embedded_so_end[];

static int fail(const char *what, const char *detail)
{
    printf("LDMATRIX-CHECK: fail %s: %s\n", what, detail);
    return 1;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if ((size_t)snprintf(path, sizeof path, "%s/libldmatrix-execstack.so", tmp) >= sizeof path)
        return fail("TMPDIR", "too long");

    FILE *out = fopen(path, "wb");
    if (out == NULL)
        return fail(path, strerror(errno));
    size_t size = (size_t)(ldmatrix_embedded_so_end - ldmatrix_embedded_so);
    if (fwrite(ldmatrix_embedded_so, 1, size, out) != size || fclose(out) != 0)
        return fail(path, "cannot write the library");

    void *handle = dlopen(path, RTLD_NOW);
    if (handle == NULL)
        return fail("dlopen", dlerror());
    int (*answer)(void) = (int (*)(void))dlsym(handle, "ldmatrix_execstack_answer");
    if (answer == NULL)
        return fail("dlsym", dlerror());
    if (answer() != 42)
        return fail("ldmatrix_execstack_answer", "did not return 42");
    printf("dlopen: loaded %s (asks for an executable stack)\n", path);
    printf("LDMATRIX-CHECK: ok\n");
    return 0;
}
