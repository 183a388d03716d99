/* newer_libstdcxx.c — linked into envprint for "envprint-newer": the start-up
 * printer as a program of a newer channel, one that needs a libstdc++ at least
 * as new as Debian sid's (gcc 15's GLIBCXX_3.4.35).  The store path of its own
 * channel has one; an older libstdc++.so.6 found first (a polluted
 * LD_LIBRARY_PATH) stops it before it runs: "version `GLIBCXX_3.4.35' not
 * found".  The reference is data, so the loader binds it at start-up.
 *
 * Build: gcc -O2 -o envprint-newer envprint.c newer_libstdcxx.c \
 *            /usr/lib/x86_64-linux-gnu/libstdc++.so.6     (in sid)
 */
extern void _ZNSt12__cow_stringD2Ev(void); /* std::__cow_string::~__cow_string(), GLIBCXX_3.4.35 */

void (*const ldmatrix_needs_glibcxx_3_4_35)(void) = _ZNSt12__cow_stringD2Ev;
