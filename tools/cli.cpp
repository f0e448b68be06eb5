#include "tools/cli.h"

#include <algorithm>
#include <cstdio>

#include "common/errors.h"

namespace longnet::tools {

Command::Command(const std::string& name, const std::string& about, const std::string& footer)
    : name_(name), app_(about, "longnet " + name) {
  if (!footer.empty()) app_.footer(footer);
  app_.get_formatter()->column_width(28);
}

void Command::add_config(bool optional) {
  auto* o = app_.add_option("config", config_, "the run's YAML file (e.g. configs/quickstart.yaml)");
  if (!optional) o->required();
}

void Command::add_sets() {
  app_.add_option("--set", sets_, "override a config key: --set train.steps=100 (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

bool Command::parse(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app_.parse(args);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app_.help().c_str(), stdout);
    return false;
  } catch (const CLI::ParseError& e) {
    throw ConfigError("longnet " + name_ + ": " + e.what() + " (see longnet " + name_ + " --help)");
  }
  return true;
}

const CLI::Validator kPositive(
    [](std::string& text) {
      try {
        size_t used = 0;
        if (std::stoll(text, &used) >= 1 && used == text.size()) return std::string();
      } catch (const std::exception&) {
      }
      return "expected a positive integer, got '" + text + "'";
    },
    "");

const CLI::Validator kFraction(
    [](std::string& text) {
      try {
        size_t used = 0;
        const double v = std::stod(text, &used);
        if (v > 0 && v <= 1 && used == text.size()) return std::string();
      } catch (const std::exception&) {
      }
      return "expected a number in (0, 1], got '" + text + "'";
    },
    "");

const CLI::Validator kNonNegative(
    [](std::string& text) {
      try {
        size_t used = 0;
        if (std::stod(text, &used) >= 0 && used == text.size()) return std::string();
      } catch (const std::exception&) {
      }
      return "expected a number >= 0, got '" + text + "'";
    },
    "");

int dispatch(const std::string& name, const std::string& about, const std::string& noun,
             const std::vector<Subcommand>& subs, int argc, char** argv, const std::string& footer) {
  CLI::App app(about, name);
  app.footer(footer);
  std::string valid;
  for (const auto& s : subs) {
    app.add_subcommand(s.name, s.about);
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  if (argc == 0 || std::string(argv[0]) == "--help" || std::string(argv[0]) == "-h") {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  const std::string first = argv[0];
  for (const auto& s : subs)
    if (s.name == first) return s.run(argc - 1, argv + 1);
  throw ConfigError(name + ": unknown " + noun + " '" + first + "' (valid: " + valid + "; see " + name + " --help)");
}

CLI::Option* add_list(CLI::App& app, const std::string& flag, std::vector<int64_t>& into, const std::string& what) {
  return app.add_option(flag, into, what)->delimiter(',')->type_name("N,N,...")->allow_extra_args(false);
}

}  // namespace longnet::tools
