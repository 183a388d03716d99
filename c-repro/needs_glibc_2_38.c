/* needs_glibc_2_38.c — a binary built against a newer glibc than the target's.
 *
 * strlcpy() entered glibc in 2.38, so the binary carries a GLIBC_2.38 version
 * need.  Run against an older libc.so.6 the loader refuses it with
 *   libc.so.6: version `GLIBC_2.38' not found (required by ...)
 * Must be built in a root whose glibc is >= 2.38 (trixie has 2.41).
 *
 * Build: gcc -O2 -o needs-glibc-2.38 needs_glibc_2_38.c
 */
#include <stdio.h>
#include <string.h>

#if !defined(__GLIBC__) || __GLIBC__ < 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 38)
#error "needs_glibc_2_38.c must be built against glibc >= 2.38 (strlcpy)"
#endif

int main(void)
{
    static const char source[] = "ldmatrix-glibc";
    char buffer[9];
    size_t length = strlcpy(buffer, source, sizeof buffer);

    /* strlcpy returns strlen(source) and copies at most sizeof buffer - 1 bytes. */
    if (length != strlen(source) || strcmp(buffer, "ldmatrix") != 0) {
        printf("LDMATRIX-CHECK: fail strlcpy returned %zu and \"%s\", expected %zu and \"ldmatrix\"\n",
               length, buffer, strlen(source));
        return 1;
    }
    printf("strlcpy: \"%s\" truncated to \"%s\" (returned %zu)\n", source, buffer, length);
    printf("LDMATRIX-CHECK: ok\n");
    return 0;
}
