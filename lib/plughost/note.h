/* The layout of a plughost metadata note, shared by the plugin SDK (which
 * emits it) and the host's reader (which parses it without loading code). */
#ifndef PLUGHOST_NOTE_H
#define PLUGHOST_NOTE_H

#include <stdint.h>

/* ABI of struct plughost_plugin and of the calls below. A host accepts a plugin
 * whose ABI version is equal to or older than its own. */
#define PLUGHOST_ABI_VERSION 1u

/* Layout version of the metadata note header itself. */
#define PLUGHOST_NOTE_FORMAT 1u

/* The ELF note: owner "plughost", type PLUGHOST_NOTE_TYPE ("PH\0\1"). */
#define PLUGHOST_NOTE_OWNER "plughost"
#define PLUGHOST_NOTE_TYPE 0x50480001u

/* The note's descriptor starts with this 16-byte magic, so the host can also
 * find it when neither program nor section headers lead to it. Its first byte
 * occurs nowhere else in it. */
#define PLUGHOST_NOTE_MAGIC "\177PLUGHOST-META\001"
#define PLUGHOST_NOTE_MAGIC_SIZE 16u

/* Entry point symbol, resolved with dlsym() after the note was checked. */
#define PLUGHOST_ENTRY_SYMBOL "plughost_plugin_v1"

/* Descriptor header; followed by the metadata JSON, NUL-terminated, padded. */
struct plughost_note_header {
        char magic[PLUGHOST_NOTE_MAGIC_SIZE];
        uint16_t format;     /* PLUGHOST_NOTE_FORMAT */
        uint16_t abi;        /* PLUGHOST_ABI_VERSION the plugin was built for */
        uint32_t flags;      /* reserved, 0 */
        uint32_t json_size;  /* bytes of JSON text, without the NUL */
        uint32_t reserved;   /* 0 */
};

#endif
