/* upper: stateless text transform, safe to call from many threads at once.
 * Method "Upper" with {"text": "abc"} answers {"text": "ABC"}. */
#include <ctype.h>
#include <errno.h>
#include <plughost/plugin.h>
#include <stdlib.h>
#include <string.h>

static int upper_call(void *self, const char *method, const char *params_json,
                      char **ret_result_json)
{
        const char *p;
        char *out;
        size_t n;

        (void)self;
        if (strcmp(method, "Upper") != 0) {
                plughost_error("unknown method '%.32s'", method);
                return -EOPNOTSUPP;
        }
        p = strstr(params_json, "\"text\"");
        if (!p || !(p = strchr(p + 6, '"'))) {
                plughost_error("params need a \"text\" string");
                return -EINVAL;
        }
        n = strcspn(++p, "\"");
        out = malloc(n + 12);
        if (!out)
                return -ENOMEM;
        memcpy(out, "{\"text\":\"", 9);
        for (size_t i = 0; i < n; i++)
                out[9 + i] = (char)toupper((unsigned char)p[i]);
        memcpy(out + 9 + n, "\"}", 3);
        *ret_result_json = out;
        return 0;
}

PLUGHOST_PLUGIN("{\"name\":\"upper\",\"version\":\"2.1.0\","
                "\"interfaces\":[\"org.example.Text\"],"
                "\"description\":\"Upper-cases ASCII text.\","
                "\"license\":\"MIT\"}",
                .call = upper_call);
