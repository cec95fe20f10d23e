/* plughostctl: command-line client of plughostd, and offline inspector.
 * main() parses the options before the command and hands over to the
 * command table (command.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int main(int argc, char **argv)
{
        static const struct option long_opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                { "no-legend", no_argument, NULL, 'L' },
                { "field", required_argument, NULL, 'F' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { 0 },
        };
        const ctl_command *cmd;
        ctl_opts opts = { .socket_path = NULL };
        char *bad = NULL;
        bool help = false, version = false;
        int c, r;

        opterr = 0;     /* getopt would start its messages with argv[0] */
        while ((c = getopt_long(argc, argv, "+:js:F:hV", long_opts, NULL)) != -1) {
                switch (c) {
                case 'j':
                        opts.json = true;
                        break;
                case 's':
                        opts.socket_path = optarg;
                        break;
                case 'L':
                        opts.no_legend = true;
                        break;
                case 'F':
                        /* Checked against the command in ctl_command_run(). */
                        opts.field = optarg;
                        break;
                case 'h':
                        help = true;
                        break;
                case 'V':
                        version = true;
                        break;
                default:
                        if (bad)
                                break;
                        if (optopt && strncmp(argv[optind - 1], "--", 2) != 0)
                                r = asprintf(&bad, c == ':' ? "option '-%c' requires an argument"
                                                            : "unknown option '-%c'", optopt);
                        else
                                r = asprintf(&bad, c == ':' ? "option '%.*s' requires an argument"
                                                            : "unknown option '%.*s'",
                                             (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
                        if (r < 0)
                                bad = NULL;
                        break;
                }
        }
        ctl_error_set_json(opts.json);
        if (bad) {
                r = ctl_usage_error("%s (see 'plughostctl help')", bad);
                free(bad);
                return r;
        }
        if (help) {
                ctl_help_general(stdout);
                return CTL_EXIT_OK;
        }
        if (version) {
                printf("plughostctl %s\n", PACKAGE_VERSION);
                return CTL_EXIT_OK;
        }
        if (opts.socket_path && !*opts.socket_path)
                return ctl_usage_error("--socket: the path is empty");
        if (optind >= argc)
                return ctl_usage_error("no command given (see 'plughostctl help')");
        cmd = ctl_command_find(argv[optind]);
        if (!cmd)
                return ctl_usage_error("unknown command '%s' (see 'plughostctl help')", argv[optind]);
        return ctl_command_run(cmd, &opts, argc - optind, argv + optind);
}
