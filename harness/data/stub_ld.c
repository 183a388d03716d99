/* NixOS's stub-ld (nixos/modules/config/stub-ld.nix, 24.05 and later), as ldmatrix builds it: the
 * program /lib64/ld-linux-x86-64.so.2 is on a NixOS system without nix-ld. The kernel runs it as
 * the interpreter of a foreign program; it says so on stderr, in the two parts nixpkgs' stub writes
 * (a line naming argv[0], then the module's message), and returns 127 as bash does for a program
 * it cannot start.
 *
 * nixpkgs builds it with musl, statically. Here it uses no C library at all: run as an interpreter,
 * the auxiliary vector describes the foreign program (AT_PHDR, AT_ENTRY), which glibc's static
 * start-up code takes for its own and crashes on; a freestanding _start reads only argv. */

static const char first[] = "Could not start dynamically linked executable: ";
static const char message[] =
    "NixOS cannot run dynamically linked executables intended for generic\n"
    "linux environments out of the box. For more information, see:\n"
    "https://nix.dev/permalink/stub-ld\n";

static long sys_write(long fd, const char *buf, unsigned long count) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(1L), "D"(fd), "S"(buf), "d"(count) : "rcx", "r11", "memory");
    return ret;
}

static void put(const char *text, unsigned long length) {
    while (length > 0) {
        long done = sys_write(2, text, length);
        if (done <= 0)
            return;
        text += done;
        length -= (unsigned long)done;
    }
}

static unsigned long length_of(const char *text) {
    unsigned long n = 0;
    while (text[n] != '\0')
        n++;
    return n;
}

__attribute__((noreturn, used)) void stub_main(long *stack) {
    long argc = stack[0];
    const char *name = argc > 0 ? (const char *)stack[1] : "(null)";
    put(first, sizeof first - 1);
    put(name, length_of(name));
    put("\n", 1);
    put(message, sizeof message - 1);
    __asm__ volatile("syscall" : : "a"(231L), "D"(127L) : "rcx", "r11", "memory"); /* exit_group(127) */
    __builtin_unreachable();
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call stub_main\n"
        "  hlt\n");
