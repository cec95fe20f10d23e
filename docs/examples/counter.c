/* counter: a plugin with state. init reads {"start": N} from its config,
 * "Next" returns the next number; calls are serialised by the host because
 * the metadata says "concurrency": "serial". */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <plughost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct counter {
        long next;
};

static int counter_init(const char *config_json, void **ret_self)
{
        struct counter *c = calloc(1, sizeof(*c));
        const char *p;

        if (!c)
                return -ENOMEM;
        p = config_json ? strstr(config_json, "\"start\"") : NULL;
        if (p && (p = strchr(p, ':')))
                c->next = strtol(p + 1, NULL, 10);
        *ret_self = c;
        return 0;
}

static int counter_call(void *self, const char *method, const char *params_json,
                        char **ret_result_json)
{
        struct counter *c = self;

        (void)params_json;
        if (strcmp(method, "Next") != 0) {
                plughost_error("unknown method '%.32s'", method);
                return -EOPNOTSUPP;
        }
        if (asprintf(ret_result_json, "{\"value\":%ld}", c->next++) < 0)
                return -ENOMEM;
        return 0;
}

static void counter_fini(void *self)
{
        free(self);
}

PLUGHOST_PLUGIN("{\"name\":\"counter\",\"version\":\"0.3.0\","
                "\"interfaces\":[\"org.example.Counter\"],"
                "\"description\":\"Counts up from a configured start.\","
                "\"concurrency\":\"serial\",\"license\":\"MIT\"}",
                .init = counter_init, .call = counter_call, .fini = counter_fini);
