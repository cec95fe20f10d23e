/* The method table: every method the daemon serves, with its parameters as
 * docs/io.plughost.varlink declares them (tests/test-varlink.c compares the
 * two), in id order so that ph_methods[id].id == id. */
#include <string.h>

#include "varlink.h"

/* Byte limits of string parameters. */
/* A List cursor is a path (a directory of up to PATH_MAX, a file name of
 * up to NAME_MAX) and may come as '%' and its hex: twice as long. */
#define CURSOR_MAX_LEN (2u * (4096u + 1u + 255u) + 1u)
#define NAME_MAX_LEN 64u                /* a plugin name (PH_NAME_MAX) */
#define INTERFACE_MAX_LEN 255u          /* a Varlink interface name */
#define METHOD_MAX_LEN 255u             /* a plugin's method name */
#define STATE_MAX_LEN 64u               /* one of a few state words */

const ph_method ph_methods[] = {
        {
                .name = "org.varlink.service.GetInfo",
                .id = PH_M_GET_INFO,
        },
        {
                .name = "org.varlink.service.GetInterfaceDescription",
                .params = {
                        { "interface", PH_PARAM_STRING, true, INTERFACE_MAX_LEN },
                },
                .id = PH_M_GET_INTERFACE_DESCRIPTION,
        },
        {
                .name = "io.plughost.List",
                .flags = PH_METHOD_MORE,
                .params = {
                        { "interface", PH_PARAM_STRING, false, INTERFACE_MAX_LEN },
                        { "state", PH_PARAM_STRING, false, STATE_MAX_LEN },
                        { "limit", PH_PARAM_INT, false, 0 },
                        { "after", PH_PARAM_STRING, false, CURSOR_MAX_LEN },
                },
                .id = PH_M_LIST,
        },
        {
                .name = "io.plughost.Info",
                .params = {
                        { "name", PH_PARAM_STRING, true, NAME_MAX_LEN },
                },
                .id = PH_M_INFO,
        },
        {
                .name = "io.plughost.Query",
                .flags = PH_METHOD_MORE,
                .params = {
                        { "interface", PH_PARAM_STRING, true, INTERFACE_MAX_LEN },
                        { "limit", PH_PARAM_INT, false, 0 },
                },
                .id = PH_M_QUERY,
        },
        {
                .name = "io.plughost.Load",
                .flags = PH_METHOD_WRITE,
                .params = {
                        { "name", PH_PARAM_STRING, true, NAME_MAX_LEN },
                },
                .id = PH_M_LOAD,
        },
        {
                .name = "io.plughost.Unload",
                .flags = PH_METHOD_WRITE,
                .params = {
                        { "name", PH_PARAM_STRING, true, NAME_MAX_LEN },
                },
                .id = PH_M_UNLOAD,
        },
        {
                .name = "io.plughost.Call",
                .flags = PH_METHOD_WRITE,
                .params = {
                        { "name", PH_PARAM_STRING, true, NAME_MAX_LEN },
                        { "method", PH_PARAM_STRING, true, METHOD_MAX_LEN },
                        { "parameters", PH_PARAM_OBJECT, false, 0 },
                },
                .id = PH_M_CALL,
        },
        {
                .name = "io.plughost.Rescan",
                .flags = PH_METHOD_WRITE,
                .id = PH_M_RESCAN,
        },
        {
                .name = "io.plughost.Status",
                .id = PH_M_STATUS,
        },
        {
                .name = "io.plughost.Monitor",
                .flags = PH_METHOD_MORE | PH_METHOD_NEEDS_MORE | PH_METHOD_ENDLESS,
                .id = PH_M_MONITOR,
        },
        {
                .name = "io.plughost.Metrics",
                .id = PH_M_METRICS,
        },
};

const size_t ph_methods_count = sizeof(ph_methods) / sizeof(ph_methods[0]);
_Static_assert(sizeof(ph_methods) / sizeof(ph_methods[0]) == _PH_M_MAX,
               "one row per method id");

/* Twelve rows: a linear search costs less than anything cleverer. */
const ph_method *ph_method_find(const char *name)
{
        if (!name)
                return NULL;
        for (size_t i = 0; i < ph_methods_count; i++)
                if (strcmp(ph_methods[i].name, name) == 0)
                        return &ph_methods[i];
        return NULL;
}
