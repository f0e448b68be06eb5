#pragma once
// How each owner of options (the model, each attention kernel, the trainer) reports what is
// wrong with them, so that train/config combines every owner's rules into one message per
// problem: `<file>: <key>: expected <what>, got <value>`.
#include <sstream>
#include <string>
#include <vector>

namespace longnet {

// One invalid option: its YAML key (`attention.dilation_rates[2]`), the value, what was expected.
struct OptionProblem {
  std::string key, value, expected;
};

// Collects the problems of a check: require(ok, key, value, expected) records one unless ok.
struct OptionProblems {
  std::vector<OptionProblem> list;
  template <typename T>
  void require(bool ok, const std::string& key, const T& value, const std::string& expected) {
    if (ok) return;
    std::ostringstream s;
    s << value;
    list.push_back({key, s.str(), expected});
  }
};

}  // namespace longnet
