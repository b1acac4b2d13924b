/* hf.h: Hugging Face checkpoints in and out.
 *
 * A Hugging Face model directory (config.json plus model.safetensors or a
 * sharded model.safetensors.index.json) of GPT2LMHeadModel or
 * LlamaForCausalLM is read into megatron-c's description and whole tensors
 * (the global parameter table of model/layout.h), and written back from
 * them. One table per architecture (hf.c) maps Hugging Face's names onto
 * megatron-c's, with the rearrangement each needs:
 *   GPT-2  Conv1D weights are stored (in, out): transposed; c_attn's
 *          columns are [q all heads | k | v], megatron-c's fused QKV rows
 *          are per head [q, k, v];
 *   Llama  q_proj, k_proj and v_proj become the fused QKV rows, group by
 *          group [the group's q heads, its k, its v] (Megatron's order);
 *          gate_proj and up_proj become linear_fc1's [gate; up].
 * Both follow rotate_half RoPE, so no permutation of q and k is needed.
 * The word embedding (and an untied output layer) gets zero rows up to the
 * padded vocabulary; they take no part in the softmax (model/lm_head.c),
 * so the converted model computes the source's function, and writing drops
 * them again. Reading converts F16 and BF16 to f32; writing stores F32, or
 * F16 / BF16 rounded to nearest even. */
#ifndef MT_INTEROP_HF_H
#define MT_INTEROP_HF_H
#include "ckpt/model_meta.h"
#include "interop/safetensors.h"
#include "model/params.h"

/* 1 if dir looks like a Hugging Face model directory (config.json and
 * model.safetensors or model.safetensors.index.json). */
int mt_hf_is_dir(const char *dir);

/* A model read from Hugging Face, as whole host tensors in the global
 * table's order (data[table.p[i].offset ...]). */
struct mt_hf_model {
    struct mt_model_desc desc;
    struct mt_param_table table;
    float *data;
    char architecture[64];
    char tokenizer_type[32]; /* desc.tokenizer_type points here */
};

/* Reads dir. The vocabulary is padded to a multiple of divisible_by;
 * tokenizer_type NULL takes config.json's "megatron_c_tokenizer_type"
 * (written by mt_hf_write), else GPT2BPETokenizer for GPT-2's vocabulary
 * of 50257, else NullTokenizer. Exits with a message naming the directory and
 * the architecture, the config field, or the tensor that is missing,
 * unexpected, or of the wrong shape or dtype. */
void mt_hf_read(const char *dir, int divisible_by, const char *tokenizer_type,
                struct mt_hf_model *out);
void mt_hf_model_free(struct mt_hf_model *m);

/* Writes dir/config.json and dir/model.safetensors (tensors stored as
 * dtype) for the model d whose whole tensors are data (table: the global
 * table of d). The architecture follows from d (GPT-2 or Llama); a model
 * neither can express is refused naming the feature. */
void mt_hf_write(const char *dir, const struct mt_model_desc *d, const struct mt_param_table *table,
                 const float *data, enum mt_st_dtype dtype);
/* The architecture d would be written as, or NULL with the reason in why. */
const char *mt_hf_architecture(const struct mt_model_desc *d, char *why, size_t whylen);

#endif /* MT_INTEROP_HF_H */
