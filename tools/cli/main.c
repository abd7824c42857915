/*
 * main.c - entry point of the `opecom` tool: global options and dispatch.
 *
 * `opecom COMMAND [ARGS...]` runs the subcommand named COMMAND from the
 * table below with argv starting at the subcommand's name. A new subcommand
 * is one function (int cli_xxx(int argc, char **argv), declared in cli.h)
 * and one line in `commands`; help lists the table.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    cli_command_fn run;
    const char *summary;
} command;

static const command commands[] = {
    {"predict", cli_predict, "score the sessions of a CSV file"},
    {"explain", cli_explain, "why each session got its score: contributions and reasons"},
    {"eval", cli_eval, "measure a model on labelled sessions (AUC, log loss, F1...)"},
    {"report", cli_report, "one HTML page: metrics, curves, calibration, importance"},
    {"info", cli_info, "describe a model file"},
    {"sessionize", cli_sessionize, "turn raw event logs into UCI session rows"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *fp) {
    size_t i;
    fputs("Usage: opecom COMMAND [OPTIONS] [ARGS]\n"
          "       opecom --help | --version\n"
          "\n"
          "Purchase-intention predictions for online-shop sessions with libopecom.\n"
          "\n"
          "Commands:\n",
          fp);
    for (i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'opecom COMMAND --help' for a command's options.\n"
          "\n"
          "Exit status: 0 success, 1 bad input data or I/O error, 2 usage error,\n"
          "3 the model could not be loaded.\n",
          fp);
}

int main(int argc, char **argv) {
    size_t i;
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("opecom %s\n", opecom_version_string());
        return CLI_EXIT_OK;
    }
    for (i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    if (argv[1][0] == '-')
        cli_error("unknown option '%s'", argv[1]);
    else
        cli_error("unknown command '%s'", argv[1]);
    fputs("Try 'opecom --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}
