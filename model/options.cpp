#include "model/options.h"

#include <cmath>

namespace longnet::model {
namespace {

template <typename E>
bool parse_in(const std::vector<std::string>& names, const std::string& name, E& out) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) {
      out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

const std::vector<std::string>& norm_placement_names() {
  static const std::vector<std::string> names = {"pre", "post", "subln", "deepnorm"};
  return names;
}
const std::vector<std::string>& norm_type_names() {
  static const std::vector<std::string> names = {"layernorm", "rmsnorm"};
  return names;
}
const std::vector<std::string>& mlp_kind_names() {
  static const std::vector<std::string> names = {"gelu", "swiglu"};
  return names;
}
const std::vector<std::string>& position_kind_names() {
  static const std::vector<std::string> names = {"rope", "xpos", "none"};
  return names;
}
const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = {"float32", "bfloat16"};
  return names;
}

bool parse(const std::string& name, NormPlacement& out) { return parse_in(norm_placement_names(), name, out); }
bool parse(const std::string& name, NormType& out) { return parse_in(norm_type_names(), name, out); }
bool parse(const std::string& name, MlpKind& out) { return parse_in(mlp_kind_names(), name, out); }
bool parse(const std::string& name, PositionKind& out) { return parse_in(position_kind_names(), name, out); }
bool parse(const std::string& name, Precision& out) { return parse_in(precision_names(), name, out); }
const std::string& name_of(NormPlacement v) { return norm_placement_names().at(static_cast<size_t>(v)); }
const std::string& name_of(NormType v) { return norm_type_names().at(static_cast<size_t>(v)); }
const std::string& name_of(MlpKind v) { return mlp_kind_names().at(static_cast<size_t>(v)); }
const std::string& name_of(PositionKind v) { return position_kind_names().at(static_cast<size_t>(v)); }
const std::string& name_of(Precision v) { return precision_names().at(static_cast<size_t>(v)); }

double xpos_max_log_scale(int64_t seq_len, double scale_base) {
  const double zeta_min = 0.4 / 1.4;
  return (static_cast<double>(seq_len) / 2.0 + 1.0) / scale_base * std::log(1.0 / zeta_min);
}

std::vector<OptionProblem> check_model_options(const ModelOptions& m) {
  OptionProblems v;
  v.require(m.vocab_size >= 0, "model.vocab_size", m.vocab_size, "an integer >= 0 (0: from the tokenizer)");
  v.require(m.n_layers >= 1, "model.n_layers", m.n_layers, "an integer >= 1");
  v.require(m.d_model >= 2, "model.d_model", m.d_model, "an integer >= 2");
  v.require(m.n_heads >= 1, "model.n_heads", m.n_heads, "an integer >= 1");
  if (m.n_heads < 1) return v.list;  // the rules below divide by it
  v.require(m.d_model % m.n_heads == 0, "model.n_heads", m.n_heads, "a divisor of model.d_model = " + std::to_string(m.d_model));
  if (m.pos != PositionKind::kNone)
    v.require(m.head_dim() % 2 == 0, "model.d_model", m.d_model, "d_model / n_heads even (model.pos: " + name_of(m.pos) + " rotates pairs)");
  v.require(m.n_kv_heads >= 0, "model.n_kv_heads", m.n_kv_heads, "an integer >= 0 (0: model.n_heads)");
  v.require(m.n_kv_heads <= 0 || m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads", m.n_kv_heads,
            "a divisor of model.n_heads = " + std::to_string(m.n_heads) + " (each key/value head serves n_heads / n_kv_heads query heads)");
  v.require(m.d_ff >= 0, "model.d_ff", m.d_ff, "an integer >= 0 (0: 4 * d_model for gelu, 8/3 * d_model rounded up to 64 for swiglu)");
  v.require(m.xpos_scale_base > 0, "model.xpos_scale_base", m.xpos_scale_base, "a positive number");
  v.require(m.dropout >= 0 && m.dropout < 1, "model.dropout", m.dropout, "a number in [0, 1)");
  v.require(m.rope_theta > 0, "model.rope_theta", m.rope_theta, "a positive number");
  v.require(m.init_std > 0, "model.init_std", m.init_std, "a positive number");
  v.require(m.loss_chunk >= 0, "model.loss_chunk", m.loss_chunk, "an integer >= 0 (tokens per chunk of the LM head; 0: whole)");
  v.require(m.mlp_chunk >= 0, "model.mlp_chunk", m.mlp_chunk, "an integer >= 0 (tokens per chunk of the MLP; 0: whole)");
  if (m.pos == PositionKind::kXpos && m.xpos_scale_base > 0) {
    // zeta^(n / base) leaves float32's range for long sequences: refuse rather than train on inf.
    const double needed = xpos_max_log_scale(m.max_seq_len, 1.0) / kXposLogScaleLimit;
    v.require(xpos_max_log_scale(m.max_seq_len, m.xpos_scale_base) <= kXposLogScaleLimit, "model.xpos_scale_base",
              m.xpos_scale_base, "at least " + std::to_string(static_cast<int64_t>(std::ceil(needed))) + " for model.max_seq_len " +
              std::to_string(m.max_seq_len) + " under model.pos: xpos (its scales zeta^(n / base) would overflow float32)");
  }
  return v.list;
}

}  // namespace longnet::model
