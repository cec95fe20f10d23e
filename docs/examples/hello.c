/* hello: the smallest useful plugin. Method "Hello" with {"name": "..."}
 * answers {"greeting": "Hello, ...!"}. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <plughost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hello_call(void *self, const char *method, const char *params_json,
                      char **ret_result_json)
{
        const char *who = "world";
        char name[64] = "";
        const char *p;
        size_t n;

        (void)self;
        if (strcmp(method, "Hello") != 0) {
                plughost_error("unknown method '%.32s'", method);
                return -EOPNOTSUPP;
        }
        /* A deliberately tiny parser: real plugins use a JSON library. */
        p = params_json ? strstr(params_json, "\"name\"") : NULL;
        if (p && (p = strchr(p + 6, '"'))) {
                n = strcspn(p + 1, "\"\\");
                if (n < sizeof(name)) {
                        memcpy(name, p + 1, n);
                        name[n] = '\0';
                        who = name;
                }
        }
        if (asprintf(ret_result_json, "{\"greeting\":\"Hello, %s!\"}", who) < 0)
                return -ENOMEM;
        return 0;
}

PLUGHOST_PLUGIN("{\"name\":\"hello\",\"version\":\"1.0.0\","
                "\"interfaces\":[\"org.example.Greeter\"],"
                "\"description\":\"Greets whoever it is given.\","
                "\"license\":\"MIT\"}",
                .call = hello_call);
