/* execstack_lib.c — a shared library that asks for an executable stack.
 *
 * Built with `-z execstack`, so its PT_GNU_STACK is RWX.  Until glibc 2.40,
 * dlopen() of such a library made the whole process stack executable; from
 * glibc 2.41 dlopen() refuses it.  dlopen_execstack.c embeds this library.
 */
int ldmatrix_execstack_answer(void)
{
    return 42;
}
