#include "attention/options.h"

namespace longnet::attention {

const std::vector<std::string>& mix_names() {
  static const std::vector<std::string> names = {"lse", "head_groups"};
  return names;
}

bool parse(const std::string& name, Mix& out) {
  const auto& names = mix_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) {
      out = static_cast<Mix>(i);
      return true;
    }
  return false;
}

const std::string& name_of(Mix v) { return mix_names().at(static_cast<size_t>(v)); }

}  // namespace longnet::attention
