/* plughostctl: command-line client of plughostd, and offline inspector. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const struct ctl_command {
        const char *name;
        const char *args;
        const char *help;
        int (*run)(const ctl_opts *opts, int argc, char **argv);
} ctl_commands[] = {
        { "inspect", "FILE...", "read plugin metadata from files (offline, loads nothing)", ctl_inspect },
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
                fprintf(out, "  %-8s %-12s %s\n", ctl_commands[i].name, ctl_commands[i].args,
                        ctl_commands[i].help);
        fprintf(out, "\nExit status: 0 success, 1 failure or refused file, 2 usage error.\n");
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
        for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++) {
                if (strcmp(argv[optind], ctl_commands[i].name) == 0) {
                        /* Options may also follow the command (inspect --json x.so). */
                        int sub = optind + 1;

                        while (sub < argc && argv[sub][0] == '-' && argv[sub][1]) {
                                if (!strcmp(argv[sub], "--json") || !strcmp(argv[sub], "-j"))
                                        opts.json = true;
                                else if (!strcmp(argv[sub], "--")) {
                                        sub++;
                                        break;
                                } else {
                                        fprintf(stderr, "plughostctl %s: unknown option '%s'\n",
                                                ctl_commands[i].name, argv[sub]);
                                        return CTL_EXIT_USAGE;
                                }
                                sub++;
                        }
                        return ctl_commands[i].run(&opts, argc - sub, argv + sub);
                }
        }
        fprintf(stderr, "plughostctl: unknown command '%s'\n", argv[optind]);
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
}
