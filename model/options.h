#pragma once
// Typed options of the language model (YAML section `model:`), filled and validated by
// train/config; the modules take their own TORCH_ARG options built from these.
#include <cstdint>
#include <string>
#include <vector>

#include "attention/options.h"
#include "common/option_problems.h"

namespace longnet::model {

// Where the LayerNorms sit (model.norm):
//   pre      x + f(LN(x))                              GPT-2, nanoGPT
//   post     LN(x + f(x))                              the original Transformer
//   subln    pre, plus an LN inside attention before the output projection and inside the
//            MLP before its second linear (MAGNETO, Wang et al. 2022, "Foundation Transformers")
//   deepnorm LN(alpha * x + f(x)), init scaled by beta (DeepNet, Wang et al. 2022)
enum class NormPlacement { kPre, kPost, kSubLn, kDeepNorm };
enum class NormType { kLayerNorm, kRmsNorm };           // model.norm_type
enum class MlpKind { kGelu, kSwiGlu };                  // model.mlp
enum class PositionKind { kRope, kXpos, kNone };        // model.pos
// The dtype of the matrix products (train.precision): float32, or bfloat16 under autocast
// (model/precision.h) with parameters, optimizer state, norms, softmax and the loss in float32.
enum class Precision { kFloat32, kBFloat16 };

// The YAML names, in enum order; parse_* return false for an unknown name.
const std::vector<std::string>& norm_placement_names();
const std::vector<std::string>& norm_type_names();
const std::vector<std::string>& mlp_kind_names();
const std::vector<std::string>& position_kind_names();
const std::vector<std::string>& precision_names();
bool parse(const std::string& name, NormPlacement& out);
bool parse(const std::string& name, NormType& out);
bool parse(const std::string& name, MlpKind& out);
bool parse(const std::string& name, PositionKind& out);
bool parse(const std::string& name, Precision& out);
const std::string& name_of(NormPlacement v);
const std::string& name_of(NormType v);
const std::string& name_of(MlpKind v);
const std::string& name_of(PositionKind v);
const std::string& name_of(Precision v);
// Each enum's names, for messages that list the valid ones.
inline const std::vector<std::string>& choices(NormPlacement) { return norm_placement_names(); }
inline const std::vector<std::string>& choices(NormType) { return norm_type_names(); }
inline const std::vector<std::string>& choices(MlpKind) { return mlp_kind_names(); }
inline const std::vector<std::string>& choices(PositionKind) { return position_kind_names(); }
inline const std::vector<std::string>& choices(Precision) { return precision_names(); }

// Which blocks drop their activations in the forward pass and recompute them in backward
// (train.activation_checkpointing: none | blocks | {every_k: N}).
struct CheckpointPolicy {
  enum class Mode { kNone, kBlocks, kEveryK };
  Mode mode = Mode::kNone;
  int64_t every_k = 1;  // kEveryK: blocks 0, k, 2k, ...
  bool covers(int64_t block) const {
    return mode == Mode::kBlocks || (mode == Mode::kEveryK && block % every_k == 0);
  }
};

struct ModelOptions {
  int64_t vocab_size = 0;  // 0: taken from the tokenizer
  int64_t n_layers = 4;
  int64_t d_model = 256;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;  // key/value heads (grouped-query attention); 0: n_heads
  int64_t d_ff = 0;        // MLP width; 0: 4 * d_model (gelu), 8/3 * d_model rounded up to 64 (swiglu)
  double dropout = 0.0;
  bool bias = false;       // biases in linear layers and norms
  NormPlacement norm = NormPlacement::kPre;
  NormType norm_type = NormType::kLayerNorm;
  MlpKind mlp = MlpKind::kGelu;
  PositionKind pos = PositionKind::kRope;
  int64_t max_seq_len = 256;  // the position tables cover positions [0, max_seq_len)
  double rope_theta = 10000.0;
  double xpos_scale_base = 512.0;  // xPos decay: zeta^(distance / xpos_scale_base)
  double init_std = 0.02;
  // Token chunks, so that nothing of size T x vocab or T x d_ff exists at long T:
  int64_t loss_chunk = 8192;  // the LM head and cross-entropy, forward and backward (0: whole)
  int64_t mlp_chunk = 0;      // the MLP, each chunk recomputed in backward (0: whole)
  // Packed windows: each document attends only to itself (attention/documents.h), documents
  // beginning at the tokenizer's end-of-document token.
  bool document_mask = false;
  // That token's id: not a YAML key but the tokenizer's, set by whoever builds the model from a
  // tokenizer (train::model_options); -1: unknown, and a model with document_mask refuses to run.
  int64_t document_separator = -1;
  attention::AttentionOptions attention;

  int64_t head_dim() const { return d_model / n_heads; }
  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int64_t ffn_dim() const {
    if (d_ff > 0) return d_ff;
    if (mlp == MlpKind::kSwiGlu) return (8 * d_model / 3 + 63) / 64 * 64;
    return 4 * d_model;
  }
};

// The keys of `model:` (its `attention` member is the section `attention:`, listed by
// attention_fields), each listed once: train/config reads and writes them through this list,
// and a test checks docs/configuration.md against it. O: ModelOptions, const or not.
template <typename O, typename F>
void model_fields(O& o, F&& f) {
  f("vocab_size", o.vocab_size);
  f("n_layers", o.n_layers);
  f("d_model", o.d_model);
  f("n_heads", o.n_heads);
  f("n_kv_heads", o.n_kv_heads);
  f("d_ff", o.d_ff);
  f("dropout", o.dropout);
  f("bias", o.bias);
  f("max_seq_len", o.max_seq_len);
  f("norm", o.norm);
  f("norm_type", o.norm_type);
  f("mlp", o.mlp);
  f("pos", o.pos);
  f("rope_theta", o.rope_theta);
  f("xpos_scale_base", o.xpos_scale_base);
  f("init_std", o.init_std);
  f("loss_chunk", o.loss_chunk);
  f("mlp_chunk", o.mlp_chunk);
  f("document_mask", o.document_mask);
}

// xPos multiplies q by zeta^(n / base) and k by zeta^(-n / base) with n the position from
// the sequence's centre and zeta >= 0.4 / 1.4; these are the largest |n| / base * ln(1 / zeta)
// float32 tolerates with room for the dot products (e^60 ~ 1e26).
double xpos_max_log_scale(int64_t seq_len, double scale_base);

// The problems of the model's options (model.*; max_seq_len resolved): shapes that do not
// divide, positions the encodings cannot reach. The attention section is its kernels' to check.
std::vector<OptionProblem> check_model_options(const ModelOptions& m);
constexpr double kXposLogScaleLimit = 60.0;

}  // namespace longnet::model
