/* main.c: the megatron-c program: subcommand dispatch. */
#include "cmd/commands.h"
#include "core/io.h"
#include <stdio.h>
#include <string.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: megatron-c <command> [flags]\n"
            "\n"
            "commands:\n"
            "  train      train a GPT or Llama-style model (no flags: the teaching default on tiny Shakespeare)\n"
            "  generate   continue a prompt with a trained checkpoint\n"
            "  eval       zero-shot WikiText perplexity or LAMBADA accuracy of a checkpoint\n"
            "  tokenize   print the token ids of standard input (--decode: the reverse)\n"
            "  preprocess tokenize a corpus into Megatron's .bin/.idx dataset format\n"
            "  compare    check two --log-json traces agree iteration by iteration\n"
            "  convert    Hugging Face checkpoint to megatron-c and back (GPT-2, Llama)\n"
            "  forward    dump the logits and last hidden states of a model on given inputs\n"
            "  finetune   fine-tune a pretrained BERT or GPT as a text classifier\n"
            "  serve      serve generations over HTTP (Megatron's PUT /api, OpenAI-style /v1/completions)\n"
            "  plot       draw the loss curves of --log-json traces (SVG, or PNG with cairo)\n"
            "  version    print the version\n"
            "\n"
            "'megatron-c <command> --help' lists the flags of a command.\n");
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    int rc = dispatch(argc, argv);
    /* a log line lost to a full disk or a closed pipe fails the program */
    if (mt_log_status() && rc == 0) rc = 1;
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0) return mt_cmd_train(argc, argv);
    if (strcmp(cmd, "generate") == 0) return mt_cmd_generate(argc, argv);
    if (strcmp(cmd, "eval") == 0) return mt_cmd_eval(argc, argv);
    if (strcmp(cmd, "tokenize") == 0) return mt_cmd_tokenize(argc, argv);
    if (strcmp(cmd, "preprocess") == 0) return mt_cmd_preprocess(argc, argv);
    if (strcmp(cmd, "compare") == 0) return mt_cmd_compare(argc, argv);
    if (strcmp(cmd, "convert") == 0) return mt_cmd_convert(argc, argv);
    if (strcmp(cmd, "forward") == 0) return mt_cmd_forward(argc, argv);
    if (strcmp(cmd, "finetune") == 0) return mt_cmd_finetune(argc, argv);
    if (strcmp(cmd, "serve") == 0) return mt_cmd_serve(argc, argv);
    if (strcmp(cmd, "plot") == 0) return mt_cmd_plot(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("megatron-c %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 && argc >= 3 && strcmp(argv[2], "help") != 0) {
        /* megatron-c help CMD is megatron-c CMD --help */
        char help[] = "--help";
        char *args[] = {argv[0], argv[2], help, NULL};
        return dispatch(3, args);
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "megatron-c: error: unknown command '%s'\n  hint: run 'megatron-c --help'\n", cmd);
    return 1;
}
