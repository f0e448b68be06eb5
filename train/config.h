#pragma once
// The one place YAML is read (STYLE.md, rules 4 and 13): a config file plus --set overrides
// -> a validated RunConfig. Errors name the file, the key path, the value and what was expected.
#include <string>
#include <vector>

#include "train/options.h"

namespace YAML {
class Node;
}

namespace longnet::train {

// Loads `path`, applies overrides ("key.path=yaml value"), parses and validates. Throws
// ConfigError. Files that must exist (data.path) are checked here, before anything is built.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from YAML text (tests, and the config saved inside a checkpoint).
RunConfig parse_config(const std::string& yaml_text, const std::string& source,
                       const std::vector<std::string>& overrides = {});
// The resolved config as YAML: every key, defaults filled in. parse_config(to_yaml(c)) == c.
std::string to_yaml(const RunConfig& config);
// Applies one "a.b.c=value" override to a YAML tree; throws ConfigError on bad syntax.
void apply_override(YAML::Node& root, const std::string& assignment);
// Overrides ("attention.key=value", as --set takes them) applied onto `options`, for a tool
// that has no config file (longnet bench attention): attention.* keys only, read and checked as
// a config's attention section is, at data.seq_len = seq_len and model.n_heads = n_heads.
// Throws ConfigError naming `source` and the key.
attention::AttentionOptions override_attention(attention::AttentionOptions options,
                                               const std::vector<std::string>& overrides, int64_t seq_len,
                                               int64_t n_heads, const std::string& source);
// Sets model.vocab_size from the tokenizer, or throws ConfigError when they disagree.
void resolve_vocab(RunConfig& config, int64_t tokenizer_vocab, const std::string& tokenizer_path);
// Thread count to use: train.threads, or when 0 the cores shared among the local_ranks ranks
// on this machine (at least 1 each).
int resolved_threads(const TrainOptions& options, int local_ranks = 1);

}  // namespace longnet::train
