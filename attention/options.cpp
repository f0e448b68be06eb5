#include "attention/options.h"

namespace longnet::attention {
namespace {

template <typename E>
bool parse_name(const std::vector<std::string>& names, const std::string& name, E& out) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) {
      out = static_cast<E>(i);
      return true;
    }
  return false;
}

}  // namespace

const std::vector<std::string>& mix_names() {
  static const std::vector<std::string> names = {"lse", "head_groups"};
  return names;
}

bool parse(const std::string& name, Mix& out) { return parse_name(mix_names(), name, out); }

const std::string& name_of(Mix v) { return mix_names().at(static_cast<size_t>(v)); }

const std::vector<std::string>& dilate_names() {
  static const std::vector<std::string> names = {"queries_and_keys", "keys", "every_offset", "distance"};
  return names;
}

bool parse(const std::string& name, Dilate& out) { return parse_name(dilate_names(), name, out); }

const std::string& name_of(Dilate v) { return dilate_names().at(static_cast<size_t>(v)); }

}  // namespace longnet::attention
