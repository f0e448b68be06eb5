#pragma once
// The command-line parser of every subcommand: CLI11 with longnet's conventions. --help is
// generated from the options themselves (so that it cannot drift from them), followed by the
// command's prose; a bad flag or value is a ConfigError naming the command, which main prints
// as one line (exit 1).
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace longnet::tools {

class Command {
 public:
  // name: as typed after `longnet` ("bench attention"); about: one line; footer: what follows
  // the options in --help.
  Command(const std::string& name, const std::string& about, const std::string& footer = "");
  CLI::App& app() { return app_; }

  // CONFIG.yaml, the first positional (required unless `optional`).
  void add_config(bool optional = false);
  // --set key.path=value, repeatable: overrides of the config's keys, applied in order.
  void add_sets();
  const std::string& config() const { return config_; }
  const std::vector<std::string>& sets() const { return sets_; }

  // Parses the arguments after the command's name. Returns false when --help was asked for
  // (and printed): the command then returns 0.
  bool parse(int argc, char** argv);

 private:
  std::string name_;
  CLI::App app_;
  std::string config_;
  std::vector<std::string> sets_;
};

// A command whose first argument names a subcommand (`longnet`, `longnet bench`): its --help
// is CLI11's list of the entries and their about lines, and the arguments after the name go to
// the entry's run. noun: what an entry is called in the message for an unknown name.
struct Subcommand {
  std::string name, about;
  std::function<int(int, char**)> run;
};
int dispatch(const std::string& name, const std::string& about, const std::string& noun,
             const std::vector<Subcommand>& subs, int argc, char** argv, const std::string& footer = "");

// Validators with longnet's messages: an integer >= 1; a number in (0, 1]; a number >= 0.
extern const CLI::Validator kPositive;
extern const CLI::Validator kFraction;
extern const CLI::Validator kNonNegative;

// A CLI11 list option: "--lengths 2048,8192" (also repeated) into integers.
CLI::Option* add_list(CLI::App& app, const std::string& flag, std::vector<int64_t>& into, const std::string& what);

}  // namespace longnet::tools
