/* plughost plugin SDK: the one header a plugin includes.
 *
 * PLUGHOST_PLUGIN(json, .call = fn, ...) embeds the plugin's metadata as an ELF
 * note (read by the host without loading the code) and exports the entry point
 * that the host resolves after dlopen. Header only: plugins link nothing. */
#ifndef PLUGHOST_PLUGIN_H
#define PLUGHOST_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <plughost/abi.h>

/* One buffer per thread, shared by all files of one plugin (weak, hidden). */
__attribute__((weak, visibility("hidden")))
__thread char plughost__error[PLUGHOST_ERROR_MAX];

/* Set the message that goes with the negative errno the plugin is about to
 * return from init or call. printf-style; truncated to PLUGHOST_ERROR_MAX. */
__attribute__((format(printf, 1, 2), unused))
static void plughost_error(const char *fmt, ...);

#define PLUGHOST__ALIGN4(n) (((n) + 3u) & ~3u)

#define PLUGHOST_PLUGIN(json_, ...)                                            \
        __attribute__((section(".note.plughost"), used, aligned(4)))          \
        static const struct {                                                  \
                uint32_t namesz, descsz, type;                                 \
                char owner[PLUGHOST__ALIGN4(sizeof(PLUGHOST_NOTE_OWNER))];     \
                struct plughost_note_header header;                            \
                char json[PLUGHOST__ALIGN4(sizeof(json_))];                    \
        } plughost__note = {                                                   \
                sizeof(PLUGHOST_NOTE_OWNER),                                   \
                sizeof(struct plughost_note_header)                            \
                        + PLUGHOST__ALIGN4(sizeof(json_)),                     \
                PLUGHOST_NOTE_TYPE,                                            \
                PLUGHOST_NOTE_OWNER,                                           \
                { PLUGHOST_NOTE_MAGIC, PLUGHOST_NOTE_FORMAT,                   \
                  PLUGHOST_ABI_VERSION, 0, sizeof(json_) - 1, 0 },             \
                json_,                                                         \
        };                                                                     \
        static const char *plughost__last_error(void)                          \
        {                                                                      \
                return plughost__error;                                        \
        }                                                                      \
        static void plughost__clear_error(void)                                \
        {                                                                      \
                plughost__error[0] = '\0';                                     \
        }                                                                      \
        __attribute__((visibility("default")))                                 \
        extern const struct plughost_plugin plughost_plugin_v1;                \
        _Pragma("GCC diagnostic push")                                         \
        _Pragma("GCC diagnostic ignored \"-Wmissing-field-initializers\"")     \
        const struct plughost_plugin plughost_plugin_v1 = {                    \
                .abi = PLUGHOST_ABI_VERSION,                                   \
                .size = sizeof(struct plughost_plugin),                        \
                .note = &plughost__note.header,                                \
                __VA_ARGS__,                                                   \
                .last_error = plughost__last_error,                            \
                .clear_error = plughost__clear_error,                          \
        };                                                                     \
        _Pragma("GCC diagnostic pop")                                          \
        extern const struct plughost_plugin plughost_plugin_v1

#include <stdarg.h>
#include <stdio.h>

static void plughost_error(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(plughost__error, sizeof(plughost__error), fmt, ap);
        va_end(ap);
}

#ifdef __cplusplus
}
#endif

#endif
