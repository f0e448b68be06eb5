#pragma once
// Command-line arguments of one subcommand: positionals, --flags, --key value, --set k=v.
#include <map>
#include <set>
#include <string>
#include <vector>

namespace longnet::tools {

struct Args {
  std::vector<std::string> positional;
  std::vector<std::string> sets;              // --set key.path=value, in order
  std::map<std::string, std::string> values;  // --name value
  std::set<std::string> flags;                // --name
  bool help = false;
};

// value_options take a value, flag_options do not; anything else is a ConfigError naming the
// flag and the subcommand.
Args parse_args(const std::string& command, int argc, char** argv, const std::set<std::string>& value_options,
                const std::set<std::string>& flag_options);

}  // namespace longnet::tools
