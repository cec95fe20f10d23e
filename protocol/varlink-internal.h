/* Private declarations shared by the files of protocol/: the generated
 * io.plughost description and the UTF-8 helpers used to keep echoed and
 * formatted text valid for JSON. */
#ifndef PH_VARLINK_INTERNAL_H
#define PH_VARLINK_INTERNAL_H

#include <stddef.h>

/* docs/io.plughost.varlink, compiled in by the rule in Makefile.am
 * (protocol/interface-io-plughost.c is generated). */
extern const char ph__interface_io_plughost[];

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (bad lead, bad continuation, overlong, surrogate,
 * past U+10FFFF, or cut short by n). */
size_t ph__utf8_seq_len(const unsigned char *s, size_t n);

/* The largest length <= max at which valid UTF-8 text s of length len can
 * be cut without splitting a character. */
size_t ph__utf8_cut(const char *s, size_t len, size_t max);

/* Replaces, in place, every byte of s[0..len) that does not start a valid
 * sequence with '?', so that s becomes valid UTF-8 of the same length. */
void ph__utf8_sanitise(char *s, size_t len);

#endif
