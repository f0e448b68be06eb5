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

bool parse(const std::string& name, NormPlacement& out) { return parse_in(norm_placement_names(), name, out); }
bool parse(const std::string& name, NormType& out) { return parse_in(norm_type_names(), name, out); }
bool parse(const std::string& name, MlpKind& out) { return parse_in(mlp_kind_names(), name, out); }
bool parse(const std::string& name, PositionKind& out) { return parse_in(position_kind_names(), name, out); }
const std::string& name_of(NormPlacement v) { return norm_placement_names().at(static_cast<size_t>(v)); }
const std::string& name_of(NormType v) { return norm_type_names().at(static_cast<size_t>(v)); }
const std::string& name_of(MlpKind v) { return mlp_kind_names().at(static_cast<size_t>(v)); }
const std::string& name_of(PositionKind v) { return position_kind_names().at(static_cast<size_t>(v)); }

double xpos_max_log_scale(int64_t seq_len, double scale_base) {
  const double zeta_min = 0.4 / 1.4;
  return (static_cast<double>(seq_len) / 2.0 + 1.0) / scale_base * std::log(1.0 / zeta_min);
}

}  // namespace longnet::model
