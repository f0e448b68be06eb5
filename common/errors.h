#pragma once
// Errors meant for the user: `longnet` prints what() as one line and exits non-zero
// (STYLE.md, rule 7). Internal invariants use TORCH_CHECK instead.
#include <stdexcept>
#include <string>

namespace longnet {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A YAML key, --set override or command-line flag that is unknown, mistyped or out of range.
struct ConfigError : Error {
  using Error::Error;
};
// A corpus, tokenizer or token shard that is missing, unreadable or inconsistent.
struct DataError : Error {
  using Error::Error;
};
// A checkpoint that is missing, truncated or from another model.
struct CheckpointError : Error {
  using Error::Error;
};

}  // namespace longnet
