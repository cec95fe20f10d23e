/* plughostctl's command table (tmux's cmd_table style): each command's
 * arguments, the options it takes after its name, its one-line help. The
 * options are parsed here with getopt_long, its own messages silenced so
 * that every message starts with "plughostctl:". */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "varlink.h"

/* Which options a command takes after its name (besides --json, --help). */
#define OPT_FILTERS 1u          /* --interface, --state */
#define OPT_FIELD 2u            /* -F, --field */
#define OPT_LEGEND 4u           /* --no-legend: it prints tables */
#define OPT_OUTPUT 16u          /* --output: metrics */
#define OPT_ALL 8u              /* every command */

struct ctl_command {
        const char *name;
        const char *args;
        const char *help;
        int (*run)(const ctl_opts *opts, int argc, char **argv);
        unsigned options;
};

static const ctl_command ctl_commands[] = {
        { "list", "", "list plugins and refused files", ctl_list, OPT_FILTERS | OPT_LEGEND },
        { "info", "NAME", "show a plugin, its metadata and counters", ctl_info, OPT_FIELD },
        { "query", "IFACE", "plugins providing an interface, best first", ctl_query, OPT_LEGEND },
        { "load", "NAME", "load a plugin", ctl_load, 0 },
        { "unload", "NAME", "unload a plugin once its calls have returned", ctl_unload, 0 },
        { "call", "NAME METHOD [PARAMS_JSON]", "call a method of a plugin, print its result", ctl_call, 0 },
        { "rescan", "", "scan the plugin directories now", ctl_rescan, 0 },
        { "status", "", "show the daemon's figures", ctl_status, 0 },
        { "monitor", "", "print plugin events as they happen, until interrupted", ctl_monitor, 0 },
        { "metrics", "", "print the daemon's figures in Prometheus's text format", ctl_metrics, OPT_OUTPUT },
        { "inspect", "FILE...", "read plugin metadata from files (offline, loads nothing)", ctl_inspect,
          OPT_FIELD | OPT_LEGEND },
        { "help", "[COMMAND]", "show the usage, or one command's", ctl_help, 0 },
};
#define N_COMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

/* The options a command may take, by flag. val: the getopt value. */
static const struct ctl_option {
        const char *name;
        int val;
        const char *arg;
        const char *help;
        unsigned flag;
} ctl_options[] = {
        { "interface", 'I', "IFACE", "only plugins that provide IFACE", OPT_FILTERS },
        { "state", 'S', "STATE", "only plugins in STATE", OPT_FILTERS },
        { "field", 'F', "FIELD", "print only FIELD's value (a dotted path: worker.pid)", OPT_FIELD },
        { "no-legend", 'L', NULL, "print tables without their header lines", OPT_LEGEND },
        { "output", 'O', "FILE", "write a new temporary file, sync it and rename it over FILE", OPT_OUTPUT },
        { "json", 'j', NULL, "print JSON for scripts", OPT_ALL },
        { "help", 'h', NULL, "show this help", OPT_ALL },
};
#define N_OPTIONS (sizeof(ctl_options) / sizeof(ctl_options[0]))

static bool option_taken(const ctl_command *cmd, const struct ctl_option *o)
{
        return o->flag == OPT_ALL || (cmd->options & o->flag);
}

/* Short options exist for -F, -j and -h; the rest are long only. */
static bool option_has_short(const struct ctl_option *o)
{
        return o->val == 'F' || o->val == 'j' || o->val == 'h';
}

const ctl_command *ctl_command_find(const char *name)
{
        for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(name, ctl_commands[i].name) == 0)
                        return &ctl_commands[i];
        return NULL;
}

void ctl_help_general(FILE *out)
{
        fprintf(out,
                "Usage: plughostctl [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Options:\n"
                "  -j, --json           print JSON for scripts; errors as one JSON object on stderr\n"
                "  -s, --socket PATH    plughostd socket\n"
                "      --no-legend      print tables without their header lines\n"
                "  -F, --field FIELD    info, inspect: print only FIELD's value\n"
                "  -h, --help           show this help\n"
                "  -V, --version        show the version\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < N_COMMANDS; i++)
                fprintf(out, "  %-8s %-28s %s\n", ctl_commands[i].name, ctl_commands[i].args,
                        ctl_commands[i].help);
        fprintf(out, "\n'plughostctl help COMMAND' shows a command's options.\n"
                "The socket is --socket, else $PLUGHOST_SOCKET, else %s.\n"
                "Exit status: 0 success, 1 failure, error reply or refused file, 2 usage error.\n",
                PH_VARLINK_DEFAULT_SOCKET);
}

void ctl_help_command(const ctl_command *cmd, FILE *out)
{
        fprintf(out, "Usage: plughostctl [OPTIONS] %s", cmd->name);
        for (size_t i = 0; i < N_OPTIONS; i++)
                if (ctl_options[i].flag != OPT_ALL && option_taken(cmd, &ctl_options[i]))
                        fprintf(out, " [--%s%s%s]", ctl_options[i].name, ctl_options[i].arg ? " " : "",
                                ctl_options[i].arg ? ctl_options[i].arg : "");
        fprintf(out, "%s%s\n\n%c%s.\n\nOptions:\n", *cmd->args ? " " : "", cmd->args,
                cmd->help[0] - 'a' + 'A', cmd->help + 1);
        for (size_t i = 0; i < N_OPTIONS; i++) {
                const struct ctl_option *o = &ctl_options[i];
                char left[64];

                if (!option_taken(cmd, o))
                        continue;
                snprintf(left, sizeof(left), "%s%c%s--%s%s%s", option_has_short(o) ? "-" : " ",
                         option_has_short(o) ? o->val : ' ', option_has_short(o) ? ", " : "  ",
                         o->name, o->arg ? " " : "", o->arg ? o->arg : "");
                fprintf(out, "  %-22s %s\n", left, o->help);
        }
        if (cmd->options & OPT_FILTERS)
                fprintf(out, "\nSTATE is one of: %s.\n", ctl_states_text());
        if (strcmp(cmd->name, "info") == 0 || strcmp(cmd->name, "inspect") == 0) {
                const char *const *fields = cmd->run == ctl_info ? ctl_info_fields : ctl_inspect_fields;

                fprintf(out, "\nFIELD starts with one of:");
                for (size_t i = 0; fields[i]; i++)
                        fprintf(out, "%s %s", i ? "," : "", fields[i]);
                fprintf(out, ".\n");
        }
}

int ctl_help(const ctl_opts *opts, int argc, char **argv)
{
        const ctl_command *cmd;

        (void)opts;
        if (argc > 1)
                return ctl_usage_error("help: expects at most one COMMAND");
        if (argc == 0) {
                ctl_help_general(stdout);
                return CTL_EXIT_OK;
        }
        cmd = ctl_command_find(argv[0]);
        if (!cmd)
                return ctl_usage_error("unknown command '%s' (see 'plughostctl help')", argv[0]);
        ctl_help_command(cmd, stdout);
        return CTL_EXIT_OK;
}

/* Fills opts from the option at val; "--name=" checks come later. */
static void option_set(ctl_opts *opts, int val, const char *arg)
{
        switch (val) {
        case 'I':
                opts->interface = arg;
                break;
        case 'S':
                opts->state = arg;
                break;
        case 'F':
                opts->field = arg;
                break;
        case 'L':
                opts->no_legend = true;
                break;
        case 'O':
                opts->output = arg;
                break;
        case 'j':
                opts->json = true;
                break;
        }
}

int ctl_command_run(const ctl_command *cmd, ctl_opts *opts, int argc, char **argv)
{
        struct option longs[N_OPTIONS + 1];
        char shorts[16] = ":", *bad = NULL;
        bool help = false;
        size_t n = 0;
        int c, r;

        memset(longs, 0, sizeof(longs));
        for (size_t i = 0; i < N_OPTIONS; i++) {
                const struct ctl_option *o = &ctl_options[i];

                if (!option_taken(cmd, o))
                        continue;
                longs[n++] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL, o->val };
                if (option_has_short(o)) {
                        size_t l = strlen(shorts);

                        shorts[l] = (char)o->val;
                        shorts[l + 1] = o->arg ? ':' : '\0';
                }
        }
        /* argv[0] is the command's name; getopt permutes, so options may
         * follow the arguments until "--". optind = 0 starts afresh. */
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
                if (c == 'h')
                        help = true;
                else if ((c == '?' || c == ':') && !bad) {
                        const char *what = optopt && strncmp(argv[optind - 1], "--", 2) != 0 ? NULL : argv[optind - 1];
                        char shortname[3] = { '-', (char)optopt, '\0' };
                        char *dup = strndup(what ? what : shortname, what ? strcspn(what, "=") : 2);

                        if (dup && asprintf(&bad, c == '?' ? "%s: unknown option '%s'"
                                                           : "%s: option '%s' requires an argument",
                                            cmd->name, dup) < 0)
                                bad = NULL;
                        free(dup);
                        if (!bad)
                                bad = strdup("out of memory");
                } else
                        option_set(opts, c, optarg);
        }
        ctl_error_set_json(opts->json);
        if (help) {
                free(bad);
                ctl_help_command(cmd, stdout);
                return CTL_EXIT_OK;
        }
        if (bad) {
                r = ctl_usage_error("%s", bad);
                free(bad);
                return r;
        }
        /* main() takes -F before the command name, whatever the command. */
        if (opts->field && !(cmd->options & OPT_FIELD))
                return ctl_usage_error("%s: does not take -F/--field (see 'plughostctl help %s')",
                                       cmd->name, cmd->name);
        if (opts->state && ctl_check_state(opts->state) < 0)
                return CTL_EXIT_USAGE;
        if (opts->interface && ctl_check_interface(opts->interface) < 0)
                return CTL_EXIT_USAGE;
        return cmd->run(opts, argc - optind, argv + optind);
}
