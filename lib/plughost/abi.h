/* The binary interface between host and plugin: the metadata note that the
 * SDK emits and the reader parses without loading code, and the entry point
 * the host resolves after dlopen. */
#ifndef PLUGHOST_ABI_H
#define PLUGHOST_ABI_H

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

/* The plugin's functions. All return 0 (or a positive value) on success and a
 * negative errno on failure.
 *
 * init:  optional. config_json is this plugin's configuration ("{}" by
 *        default). Store per-instance state in *ret_self.
 * call:  required. method and params_json are NUL-terminated; on success set
 *        *ret_result_json to malloc'd JSON text (the host frees it) or leave
 *        it NULL for "null". May run on several threads at once unless the
 *        metadata says "concurrency": "serial".
 * fini:  optional. Runs once, after the last call returned.
 *
 * On failure, plughost_error() attaches a human message to the error. */
struct plughost_plugin {
        uint32_t abi;                      /* PLUGHOST_ABI_VERSION */
        uint32_t size;                     /* sizeof(struct plughost_plugin) */
        const struct plughost_note_header *note;
        int (*init)(const char *config_json, void **ret_self);
        int (*call)(void *self, const char *method, const char *params_json,
                    char **ret_result_json);
        void (*fini)(void *self);
        /* Filled by PLUGHOST_PLUGIN: this thread's message for the last
         * failure, and a way to forget it, which the host calls before each
         * init and call. Either may be NULL in a hand-written entry point;
         * the host never writes to what last_error returns. */
        const char *(*last_error)(void);
        void (*clear_error)(void);
};

/* Every ABI-1 plugin has the whole struct above; a later ABI may append. */
#define PLUGHOST_PLUGIN_V1_SIZE sizeof(struct plughost_plugin)

#define PLUGHOST_ERROR_MAX 512

#endif
