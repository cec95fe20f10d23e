/* plughostctl -F FIELD: one value out of a reply, like modinfo -F; FIELD
 * is a dotted path into the JSON (worker.pid, metadata.x-vendor). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int ctl_field_check(const char *path, const char *const *fields)
{
        size_t n = strcspn(path, ".");
        char *list = NULL;
        size_t len = 0;
        FILE *f;

        for (size_t i = 0; fields[i]; i++)
                if (strlen(fields[i]) == n && strncmp(path, fields[i], n) == 0)
                        return 0;
        f = open_memstream(&list, &len);
        if (f) {
                for (size_t i = 0; fields[i]; i++)
                        fprintf(f, "%s%s", i ? ", " : "", fields[i]);
                fclose(f);
        }
        ctl_usage_error("unknown field '%s'; fields: %s", path, list ? list : "?");
        free(list);
        return -EINVAL;
}

/* The value at path, or NULL (borrowed). */
static json_t *field_get(json_t *root, const char *path)
{
        char *copy = strdup(path), *save = NULL;
        json_t *v = root;

        if (!copy)
                return NULL;
        for (char *k = strtok_r(copy, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
                v = json_object_get(v, k);
        free(copy);
        return v;
}

static void field_scalar(json_t *v)
{
        char *s;

        if (json_is_string(v)) {
                s = ctl_escape(json_string_value(v));
        } else {
                s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        }
        printf("%s\n", s ? s : "?");
        free(s);
}

void ctl_field_print(json_t *root, const char *path, bool json)
{
        json_t *v = field_get(root, path), *e;
        size_t i;

        if (!v || json_is_null(v))
                return;
        if (json) {
                ctl_print_json(v, JSON_COMPACT);
                return;
        }
        if (json_is_array(v)) {
                json_array_foreach(v, i, e)
                        field_scalar(e);
                return;
        }
        field_scalar(v);
}
