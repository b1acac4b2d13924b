/* commands.h: the subcommands of megatron-c. Each takes the whole argv
 * (argv[1] is the subcommand name) and returns the exit status. */
#ifndef MT_COMMANDS_H
#define MT_COMMANDS_H

int mt_cmd_train(int argc, char **argv);
int mt_cmd_generate(int argc, char **argv);
int mt_cmd_eval(int argc, char **argv);
int mt_cmd_tokenize(int argc, char **argv);
int mt_cmd_preprocess(int argc, char **argv);
int mt_cmd_compare(int argc, char **argv);

#endif
