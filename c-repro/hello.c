/* hello.c — the smallest foreign binary: links only libc.
 *
 * Prints a greeting naming the glibc it was compiled against and the one it
 * runs on, then the check line.  If it prints anything at all, the dynamic
 * loader and libc.so.6 were found, which is all this reproducer checks.
 */
#include <gnu/libc-version.h>
#include <stdio.h>

int main(void)
{
    printf("hello from ldmatrix: built against glibc %d.%d, running on glibc %s\n",
           __GLIBC__, __GLIBC_MINOR__, gnu_get_libc_version());
    printf("LDMATRIX-CHECK: ok\n");
    return 0;
}
