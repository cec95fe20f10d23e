/* plughostctl's argument checks, made before anything is sent: plugin
 * names and interface names by the metadata's rules (lib/meta.c), and
 * states from the protocol's list (ph_varlink_plugin_states). */
#include <errno.h>
#include <string.h>

#include "ctl.h"
#include "plughost/plughost.h"
#include "varlink.h"

/* The metadata's rules (lib/meta.c). */
int ctl_check_name(const char *what, const char *s)
{
        if (ph_name_valid(s))
                return 0;
        ctl_usage_error("'%s' is not a valid %s (1 to %u of a-z, 0-9, '.', '_', '-', "
                        "starting with a letter or digit)", s, what, PH_NAME_MAX);
        return -EINVAL;
}

int ctl_check_interface(const char *s)
{
        if (ph_interface_valid(s))
                return 0;
        ctl_usage_error("'%s' is not a valid interface name (reverse-domain, like org.example.Greeter)", s);
        return -EINVAL;
}

const char *ctl_states_text(void)
{
        static char text[256];

        if (!text[0])
                for (size_t i = 0; ph_varlink_plugin_states[i]; i++) {
                        if (i)
                                strcat(text, ", ");
                        strcat(text, ph_varlink_plugin_states[i]);
                }
        return text;
}

int ctl_check_state(const char *s)
{
        for (size_t i = 0; ph_varlink_plugin_states[i]; i++)
                if (strcmp(s, ph_varlink_plugin_states[i]) == 0)
                        return 0;
        ctl_usage_error("'%s' is not a state; states: %s", s, ctl_states_text());
        return -EINVAL;
}
