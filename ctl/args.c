/* plughostctl's argument checks, made before anything is sent: plugin
 * names and interface names by the metadata's rules (lib/meta.c), and
 * states from the protocol's list (ph_varlink_plugin_states). */
#include <errno.h>
#include <string.h>

#include "ctl.h"
#include "varlink.h"

/* lib/meta.c's limits: PH_NAME_MAX and an interface name's. */
#define ARGS_NAME_MAX 64u
#define ARGS_INTERFACE_MAX 255u

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* ^[a-z0-9][a-z0-9._-]{0,63}$, as the metadata requires of a name. */
int ctl_check_name(const char *what, const char *s)
{
        size_t len = strlen(s);
        bool ok = len > 0 && len <= ARGS_NAME_MAX && ((s[0] >= 'a' && s[0] <= 'z') || is_digit(s[0]));

        for (size_t i = 1; ok && i < len; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') || is_digit(s[i]) || strchr("._-", s[i]);
        if (ok)
                return 0;
        ctl_usage_error("'%s' is not a valid %s (1 to %u of a-z, 0-9, '.', '_', '-', "
                        "starting with a letter or digit)", s, what, ARGS_NAME_MAX);
        return -EINVAL;
}

/* Reverse-domain, as Varlink spells interface names:
 * [A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+ */
static bool interface_valid(const char *s)
{
        size_t len = strlen(s), dots = 0;
        bool seg_start = true;

        if (len == 0 || len > ARGS_INTERFACE_MAX || !is_alpha(s[0]))
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '.') {
                        if (seg_start || s[i - 1] == '-')
                                return false;
                        dots++;
                        seg_start = true;
                } else if (c == '-') {
                        if (seg_start)
                                return false;
                } else if (is_alpha(c) || is_digit(c)) {
                        seg_start = false;
                } else {
                        return false;
                }
        }
        return dots > 0 && !seg_start && s[len - 1] != '-';
}

int ctl_check_interface(const char *s)
{
        if (interface_valid(s))
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
