#include "tools/args.h"

#include "common/errors.h"

namespace longnet::tools {

Args parse_args(const std::string& command, int argc, char** argv, const std::set<std::string>& value_options,
                const std::set<std::string>& flag_options) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      args.help = true;
    } else if (a == "--set") {
      if (i + 1 >= argc) throw ConfigError("longnet " + command + ": --set needs key.path=value");
      args.sets.push_back(argv[++i]);
    } else if (a.rfind("--set=", 0) == 0) {
      args.sets.push_back(a.substr(6));
    } else if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      const auto eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (value_options.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw ConfigError("longnet " + command + ": --" + name + " needs a value");
          value = argv[++i];
        }
        args.values[name] = value;
      } else if (flag_options.count(name) && !inline_value) {
        args.flags.insert(name);
      } else {
        throw ConfigError("longnet " + command + ": unknown option --" + name + " (see longnet " + command + " --help)");
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

}  // namespace longnet::tools
