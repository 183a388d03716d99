/* needs_libcrypt.c — a binary that needs a library outside glibc.
 *
 * Stands for python-build-standalone 3.11, which links libcrypt.so.1
 * (libxcrypt).  On a NixOS-like root with a patched interpreter but no RUNPATH
 * the loader stops before main() with
 *   error while loading shared libraries: libcrypt.so.1: cannot open shared object file
 * When the library is found, crypt() with a SHA-512 salt must give a hash that
 * starts with the salt.
 *
 * Build: gcc -O2 -o needs-libcrypt needs_libcrypt.c -lcrypt
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>

#define SALT "$6$ldmatrix$"

int main(void)
{
    const char *hash = crypt("ldmatrix-password", SALT);

    if (hash == NULL || strncmp(hash, SALT, strlen(SALT)) != 0) {
        printf("LDMATRIX-CHECK: fail crypt() with salt %s returned %s\n",
               SALT, hash == NULL ? "NULL" : hash);
        return 1;
    }
    printf("crypt: %s\n", hash);
    printf("LDMATRIX-CHECK: ok\n");
    return 0;
}
