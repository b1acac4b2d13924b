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
int mt_cmd_convert(int argc, char **argv);
int mt_cmd_forward(int argc, char **argv);
int mt_cmd_finetune(int argc, char **argv);
int mt_cmd_serve(int argc, char **argv);
int mt_cmd_plot(int argc, char **argv);
/* eval --task classify (called by mt_cmd_eval) */
int mt_cmd_eval_classify(int argc, char **argv);

/* Flag-table entries (core/args.h) that several commands share, written
 * once. They use the including file's F(field), its offsetof into the
 * command's own argument struct, which needs the named fields. */
#define MT_SPECS_BACKEND /* fields: const char *backend; int tf32 */ \
    {"backend", MT_ARG_STRING, F(backend), "S", "cpu | cpu-ref | cuda (cpu)"}, \
    {"tf32", MT_ARG_BOOL, F(tf32), NULL, "let cuda GEMMs use TF32 tensor cores (default: fp32)"}
/* the --tokenizer-type list of every command */
#define MT_TOKENIZER_TYPES_HELP \
    "GPT2BPETokenizer | BertWordPieceLowerCase | BertWordPieceCase | CharLevel | NullTokenizer"
#define MT_SPECS_BPE_FILES /* fields: const char *vocab_file, *merge_file */ \
    {"vocab-file", MT_ARG_STRING, F(vocab_file), "FILE", \
     "BPE encoder.json or WordPiece vocab.txt (default: the shipped gpt2-vocab/encoder.json, bert-vocab/vocab.txt)"}, \
    {"merge-file", MT_ARG_STRING, F(merge_file), "FILE", \
     "BPE merges (default: the shipped gpt2-vocab/vocab.bpe)"}

#define MT_SPECS_LOAD /* fields: const char *load; long ckpt_step */ \
    {"load", MT_ARG_STRING, F(load), "DIR", \
     "a megatron-c checkpoint directory or a Hugging Face model directory (required)"}, \
    {"ckpt-step", MT_ARG_LONG, F(ckpt_step), "N", "megatron-c checkpoint: the iteration (default: the latest)"}

#define MT_SPECS_VOCAB_SIZE /* field: int vocab_size */ \
    {"vocab-size", MT_ARG_INT, F(vocab_size), "N", \
     "NullTokenizer: ids 0..N-1 and the end-of-document id N (Megatron's --vocab-size)"}

#endif
