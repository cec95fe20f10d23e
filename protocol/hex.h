/* Hex text of bytes, both ways: the "%HEX" List cursor and sha256sum
 * lines of the digest policy. */
#ifndef PH_HEX_H
#define PH_HEX_H

#include <stddef.h>

/* Writes 2*n lower-case hex digits of in[0..n) to out, and a NUL. out holds
 * 2*n+1 bytes. */
void ph_hex_encode(const unsigned char *in, size_t n, char *out);

/* Reads n bytes from the 2*n hex digits at s (either case) into out.
 * Returns 0, or -EINVAL at the first character that is not a hex digit
 * (s is read no further than that character). */
int ph_hex_decode(const char *s, size_t n, unsigned char *out);

#endif
