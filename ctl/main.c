/* plughostctl: command-line client of plughostd, and offline inspector. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "varlink.h"

/* Options a command takes after its name, besides --json. */
#define CTL_TAKES_FILTERS 1u    /* --interface I, --state S */

static const struct ctl_command {
        const char *name;
        const char *args;
        const char *help;
        int (*run)(const ctl_opts *opts, int argc, char **argv);
        unsigned options;
} ctl_commands[] = {
        { "list", "[--interface I] [--state S]", "list plugins and refused files", ctl_list,
          CTL_TAKES_FILTERS },
        { "info", "NAME", "show a plugin, its metadata and counters", ctl_info, 0 },
        { "query", "IFACE", "plugins providing an interface, best first", ctl_query, 0 },
        { "load", "NAME", "load a plugin", ctl_load, 0 },
        { "unload", "NAME", "unload a plugin once its calls have returned", ctl_unload, 0 },
        { "call", "NAME METHOD [PARAMS_JSON]", "call a method of a plugin, print its result",
          ctl_call, 0 },
        { "rescan", "", "scan the plugin directories now", ctl_rescan, 0 },
        { "status", "", "show the daemon's figures", ctl_status, 0 },
        { "monitor", "", "print plugin events as they happen, until interrupted", ctl_monitor, 0 },
        { "inspect", "FILE...", "read plugin metadata from files (offline, loads nothing)", ctl_inspect, 0 },
};

static void ctl_usage(FILE *out)
{
        fprintf(out,
                "Usage: plughostctl [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Options:\n"
                "  -j, --json           print JSON for scripts\n"
                "  -s, --socket PATH    plughostd socket\n"
                "  -h, --help           show this help\n"
                "  -V, --version        show the version\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
                fprintf(out, "  %-8s %-28s %s\n", ctl_commands[i].name, ctl_commands[i].args,
                        ctl_commands[i].help);
        fprintf(out, "\nThe socket is --socket, else $PLUGHOST_SOCKET, else %s.\n"
                "Exit status: 0 success, 1 failure, error reply or refused file, 2 usage error.\n",
                PH_VARLINK_DEFAULT_SOCKET);
}

/* The value of --name VALUE or --name=VALUE at argv[*i] (advancing *i
 * past it), or NULL when argv[*i] is not that option. *ret_missing is set
 * when the value is missing. */
static const char *ctl_option_value(const char *name, int argc, char **argv, int *i,
                                    bool *ret_missing)
{
        size_t n = strlen(name);

        if (strncmp(argv[*i], name, n) != 0)
                return NULL;
        if (argv[*i][n] == '=')
                return argv[*i] + n + 1;
        if (argv[*i][n] != '\0')
                return NULL;
        if (*i + 1 >= argc) {
                *ret_missing = true;
                return NULL;
        }
        return argv[++*i];
}

/* Runs cmd with the arguments that follow its name. Options may be mixed
 * with the arguments (inspect x.so --json) until "--"; the arguments are
 * passed on in order, without them. */
static int ctl_run(const struct ctl_command *cmd, ctl_opts *opts, int argc, char **argv)
{
        char **args = calloc((size_t)argc + 1, sizeof(char *));
        bool options = true, missing = false;
        const char *v;
        int n = 0, r;

        if (!args) {
                fprintf(stderr, "plughostctl: %s\n", strerror(ENOMEM));
                return CTL_EXIT_FAILED;
        }
        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];

                if (!options || a[0] != '-' || !a[1])
                        args[n++] = argv[i];
                else if (!strcmp(a, "--"))
                        options = false;
                else if (!strcmp(a, "--json") || !strcmp(a, "-j"))
                        opts->json = true;
                else if ((cmd->options & CTL_TAKES_FILTERS) &&
                         (v = ctl_option_value("--interface", argc, argv, &i, &missing)))
                        opts->interface = v;
                else if ((cmd->options & CTL_TAKES_FILTERS) && !missing &&
                         (v = ctl_option_value("--state", argc, argv, &i, &missing)))
                        opts->state = v;
                else {
                        if (missing)
                                fprintf(stderr, "plughostctl %s: option '%s' needs a value\n",
                                        cmd->name, a);
                        else
                                fprintf(stderr, "plughostctl %s: unknown option '%s'\n", cmd->name, a);
                        free(args);
                        return CTL_EXIT_USAGE;
                }
        }
        r = cmd->run(opts, n, args);
        free(args);
        return r;
}

int main(int argc, char **argv)
{
        static const struct option long_opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { 0 },
        };
        ctl_opts opts = { .socket_path = NULL };
        int c;

        while ((c = getopt_long(argc, argv, "+js:hV", long_opts, NULL)) != -1) {
                switch (c) {
                case 'j':
                        opts.json = true;
                        break;
                case 's':
                        opts.socket_path = optarg;
                        break;
                case 'h':
                        ctl_usage(stdout);
                        return CTL_EXIT_OK;
                case 'V':
                        printf("plughostctl %s\n", PACKAGE_VERSION);
                        return CTL_EXIT_OK;
                default:
                        ctl_usage(stderr);
                        return CTL_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                ctl_usage(stderr);
                return CTL_EXIT_USAGE;
        }
        for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
                if (strcmp(argv[optind], ctl_commands[i].name) == 0)
                        return ctl_run(&ctl_commands[i], &opts, argc - optind - 1, argv + optind + 1);
        fprintf(stderr, "plughostctl: unknown command '%s'\n", argv[optind]);
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
}
