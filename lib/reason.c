/* Scan verdicts: their names and phrases, in one table, and the one
 * function that writes a refusal into a verdict. */
#include <stdarg.h>
#include <stdio.h>

#include "plughost/plughost.h"
#include "scan-internal.h"

static const struct {
        const char *name;
        const char *describe;
} reasons[_PH_REASON_MAX] = {
        [PH_REASON_OK]            = { "ok", "a plugin" },
        [PH_REASON_NOT_REGULAR]   = { "not-regular", "not a regular file" },
        [PH_REASON_NOT_ELF]       = { "not-elf", "not an ELF file" },
        [PH_REASON_WRONG_CLASS]   = { "wrong-class", "wrong ELF class" },
        [PH_REASON_WRONG_ENDIAN]  = { "wrong-byte-order", "wrong byte order" },
        [PH_REASON_WRONG_MACHINE] = { "wrong-machine", "built for another machine" },
        [PH_REASON_NOT_SHARED]    = { "not-shared-object", "not a shared object" },
        [PH_REASON_DEBUG_ONLY]    = { "debug-only", "a separate debug-symbol file" },
        [PH_REASON_TRUNCATED]     = { "truncated", "truncated" },
        [PH_REASON_NO_METADATA]   = { "no-metadata", "no plughost metadata" },
        [PH_REASON_BAD_METADATA]  = { "bad-metadata", "invalid plughost metadata" },
        [PH_REASON_ABI_TOO_NEW]   = { "abi-too-new", "built for a newer plughost ABI" },
        [PH_REASON_TOO_LARGE]     = { "too-large", "exceeds a size or count limit" },
        [PH_REASON_IO]            = { "io-error", "could not be read" },
        [PH_REASON_UNTRUSTED]     = { "untrusted", "refused by the host's trust policy" },
};

int ph__scan_refuse(ph_scan *scan, ph_reason reason, const char *fmt, ...)
{
        va_list ap;

        scan->reason = reason;
        va_start(ap, fmt);
        vsnprintf(scan->message, sizeof(scan->message), fmt, ap);
        va_end(ap);
        return 1;
}

const char *ph_reason_name(ph_reason reason)
{
        return (unsigned)reason < _PH_REASON_MAX ? reasons[reason].name : "unknown";
}

const char *ph_reason_describe(ph_reason reason)
{
        return (unsigned)reason < _PH_REASON_MAX ? reasons[reason].describe : "unknown";
}

const char *ph_via_name(ph_via via)
{
        switch (via) {
        case PH_VIA_PROGRAM_HEADERS:
                return "program-headers";
        case PH_VIA_SECTION_HEADERS:
                return "section-headers";
        case PH_VIA_SEARCH:
                return "search";
        default:
                return "none";
        }
}
