#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "attention/registry.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace longnet::train {
namespace {

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else return "a string";
}

// One YAML mapping at a key path; remembers which keys were read so that the rest can be
// reported as unknown.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, std::string source)
      : node_(node), path_(std::move(path)), source_(std::move(source)) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) fail(path_, "expected a mapping of keys");
  }

  template <typename T>
  void read(const std::string& key, T& field) {
    known_.insert(key);
    if (!node_ || !node_.IsMap()) return;
    const YAML::Node v = node_[key];
    if (!v || v.IsNull()) return;
    const std::string where = path_ + "." + key;
    if (!v.IsScalar()) fail(where, std::string("expected ") + type_name<T>() + ", got a " + (v.IsMap() ? "mapping" : "list"));
    try {
      field = v.as<T>();
    } catch (const YAML::Exception&) {
      fail(where, std::string("expected ") + type_name<T>() + ", got '" + v.Scalar() + "'");
    }
  }

  // One field of an options struct, read as its type says.
  template <typename T>
  void field(const std::string& key, T& f) {
    if constexpr (std::is_enum_v<T>) read_choice(key, f);
    else if constexpr (std::is_same_v<T, std::vector<int64_t>>) read_list(key, f);
    else if constexpr (std::is_same_v<T, std::vector<std::pair<int64_t, int64_t>>>) read_pairs(key, f);
    else if constexpr (std::is_same_v<T, model::CheckpointPolicy>) read_checkpoint_policy(key, f);
    else read(key, f);
  }

  // One name of a fixed set (model.norm: pre | post | ...), into its enum: name_of, parse and
  // choices are found with the enum (model/options.h, attention/options.h).
  template <typename E>
  void read_choice(const std::string& key, E& field) {
    std::string name = name_of(field);
    read(key, name);
    if (parse(name, field)) return;
    std::string valid;
    for (const auto& n : choices(field)) valid += (valid.empty() ? "" : ", ") + n;
    fail(path_ + "." + key, "expected one of " + valid + ", got '" + name + "'");
  }

  // train.activation_checkpointing: none | blocks | {every_k: N}.
  void read_checkpoint_policy(const std::string& key, model::CheckpointPolicy& field) {
    known_.insert(key);
    if (!node_ || !node_.IsMap()) return;
    const YAML::Node v = node_[key];
    if (!v || v.IsNull()) return;
    const std::string where = path_ + "." + key, expected = "none, blocks or {every_k: N}";
    if (v.IsScalar()) {
      if (v.Scalar() == "none") field.mode = model::CheckpointPolicy::Mode::kNone;
      else if (v.Scalar() == "blocks") field.mode = model::CheckpointPolicy::Mode::kBlocks;
      else fail(where, "expected " + expected + ", got '" + v.Scalar() + "'");
      return;
    }
    if (!v.IsMap() || v.size() != 1 || !v["every_k"]) fail(where, "expected " + expected);
    try {
      field.every_k = v["every_k"].as<int64_t>();
    } catch (const YAML::Exception&) {
      fail(where + ".every_k", "expected an integer");
    }
    if (field.every_k < 1) fail(where + ".every_k", "expected an integer >= 1, got " + std::to_string(field.every_k));
    field.mode = model::CheckpointPolicy::Mode::kEveryK;
  }

  // A list of integers, e.g. [2048, 4096].
  void read_list(const std::string& key, std::vector<int64_t>& field) {
    const YAML::Node v = sequence(key, "a list of integers such as [2048, 4096]");
    if (!v) return;
    const std::string where = path_ + "." + key;
    field.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string item = where + "[" + std::to_string(i) + "]";
      if (!v[i].IsScalar()) fail(item, "expected an integer");
      try {
        field.push_back(v[i].as<int64_t>());
      } catch (const YAML::Exception&) {
        fail(item, "expected an integer, got '" + v[i].Scalar() + "'");
      }
    }
  }

  // A list of integer pairs, e.g. [[0, 3], [5, 1]].
  void read_pairs(const std::string& key, std::vector<std::pair<int64_t, int64_t>>& field) {
    const YAML::Node v = sequence(key, "a list of [query_block, key_block] pairs");
    if (!v) return;
    const std::string where = path_ + "." + key;
    field.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string item = where + "[" + std::to_string(i) + "]";
      if (!v[i].IsSequence() || v[i].size() != 2) fail(item, "expected a [query_block, key_block] pair");
      try {
        field.emplace_back(v[i][0].as<int64_t>(), v[i][1].as<int64_t>());
      } catch (const YAML::Exception&) {
        fail(item, "expected two integers");
      }
    }
  }

  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) fail(path_, "a key that is a " + std::string(kv.first.IsMap() ? "mapping" : "list") + ", not a name");
      const std::string key = kv.first.Scalar();
      if (!known_.count(key)) {
        std::string valid;
        for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
        fail(path_ + "." + key, "unknown key (valid keys of " + path_ + ": " + valid + ")");
      }
    }
  }

  // The list under key, or an undefined node when the key is absent; fails if it is no list.
  YAML::Node sequence(const std::string& key, const std::string& expected) {
    known_.insert(key);
    if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node v = node_[key];
    if (!v || v.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    if (!v.IsSequence()) fail(path_ + "." + key, "expected " + expected);
    return v;
  }

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw ConfigError(source_ + ": " + where + ": " + what);
  }

 private:
  YAML::Node node_;
  std::string path_, source_;
  std::set<std::string> known_;
};

// Range and cross-field rules, checked once on the whole config.
class Validator {
 public:
  explicit Validator(std::string source) : source_(std::move(source)) {}
  template <typename T>
  void require(bool ok, const std::string& key, const T& value, const std::string& expected) const {
    if (ok) return;
    std::ostringstream ss;
    ss << source_ << ": " << key << ": expected " << expected << ", got " << value;
    throw ConfigError(ss.str());
  }

 private:
  std::string source_;
};

void validate(RunConfig& c) {
  const Validator v(c.source);
  const auto& d = c.data;
  v.require(!d.path.empty(), "data.path", "nothing", "a text or JSONL file, or a folder of .txt and .jsonl files");
  std::error_code ec;  // a name too long, or a folder on the way that cannot be searched
  v.require(std::filesystem::exists(d.path, ec), "data.path", "'" + d.path + "' (" + (ec ? ec.message() : "no such file or folder") + ")",
            "an existing file or folder");
  v.require(d.format == "auto" || d.format == "text" || d.format == "jsonl", "data.format", "'" + d.format + "'",
            "one of auto, text, jsonl");
  v.require(!d.text_key.empty(), "data.text_key", "nothing", "the name of a JSONL field");
  v.require(d.val_fraction > 0 && d.val_fraction < 1, "data.val_fraction", d.val_fraction, "a number in (0, 1)");
  v.require(d.passkey_fraction >= 0 && d.passkey_fraction <= 1, "data.passkey_fraction", d.passkey_fraction,
            "a number in [0, 1]");
  v.require(d.passkey_short_length >= 1, "data.passkey_short_length", d.passkey_short_length, "an integer >= 1");
  v.require(d.passkey_reach_length >= 0 && d.passkey_reach_length <= d.seq_len, "data.passkey_reach_length",
            d.passkey_reach_length, "an integer in [0, data.seq_len]");
  v.require(d.seq_len >= 2, "data.seq_len", d.seq_len, "an integer >= 2");
  v.require(d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer >= 1");

  const auto& t = c.tokenizer;
  v.require(!t.path.empty(), "tokenizer.path", "nothing", "the path of a SentencePiece .model file (created when missing)");
  v.require(t.type == "bpe" || t.type == "unigram" || t.type == "char", "tokenizer.type", "'" + t.type + "'", "one of bpe, unigram, char");
  v.require(t.vocab_size >= 8 && t.vocab_size <= (1 << 24), "tokenizer.vocab_size", t.vocab_size, "an integer in [8, 16777216]");
  v.require(t.max_sentences >= 0, "tokenizer.max_sentences", t.max_sentences, "an integer >= 0 (0: all lines)");

  // The model's own rules (model/options.h), then each attention kernel's (attention/registry.h);
  // train/ adds only what ties sections together.
  auto& m = c.model;
  if (m.max_seq_len == 0) m.max_seq_len = d.seq_len;
  v.require(m.max_seq_len >= d.seq_len, "model.max_seq_len", m.max_seq_len, "at least data.seq_len = " + std::to_string(d.seq_len));
  for (const auto& p : model::check_model_options(m)) v.require(false, p.key, p.value, p.expected);
  attention::register_builtin_kernels();
  for (const auto& p : attention::check_options(m.attention, {d.seq_len, m.n_heads}))
    v.require(false, p.key, p.value, p.expected);

  const auto& r = c.train;
  v.require(r.steps >= 1, "train.steps", r.steps, "an integer >= 1");
  v.require(r.grad_accum >= 1, "train.grad_accum", r.grad_accum, "an integer >= 1");
  v.require(r.lr > 0, "train.lr", r.lr, "a positive number");
  v.require(r.min_lr >= 0 && r.min_lr <= r.lr, "train.min_lr", r.min_lr, "a number in [0, train.lr]");
  v.require(r.warmup_steps >= 0, "train.warmup_steps", r.warmup_steps, "an integer >= 0");
  v.require(r.lr_decay_steps >= 0, "train.lr_decay_steps", r.lr_decay_steps, "an integer >= 0 (0: train.steps)");
  v.require(r.weight_decay >= 0, "train.weight_decay", r.weight_decay, "a number >= 0");
  v.require(r.beta1 >= 0 && r.beta1 < 1, "train.beta1", r.beta1, "a number in [0, 1)");
  v.require(r.beta2 >= 0 && r.beta2 < 1, "train.beta2", r.beta2, "a number in [0, 1)");
  v.require(r.eps > 0, "train.eps", r.eps, "a positive number");
  v.require(r.grad_clip >= 0, "train.grad_clip", r.grad_clip, "a number >= 0 (0: no clipping)");
  v.require(r.log_every >= 1, "train.log_every", r.log_every, "an integer >= 1");
  v.require(r.eval_every >= 0, "train.eval_every", r.eval_every, "an integer >= 0 (0: at the end only)");
  v.require(r.eval_batches >= 1, "train.eval_batches", r.eval_batches, "an integer >= 1");
  v.require(r.stop_at_val_loss >= 0 && std::isfinite(r.stop_at_val_loss), "train.stop_at_val_loss",
            r.stop_at_val_loss, "a loss > 0, or 0 for off");
  v.require(r.ckpt_every >= 0, "train.ckpt_every", r.ckpt_every, "an integer >= 0 (0: at the end only)");
  v.require(r.keep_last >= 1, "train.keep_last", r.keep_last, "an integer >= 1");
  v.require(r.threads >= 0 && r.threads <= 1024, "train.threads", r.threads, "an integer in [0, 1024] (0: all cores)");
  v.require(r.device == "cpu" || r.device == "cuda", "train.device", "'" + r.device + "'", "cpu or cuda");
  v.require(!r.out_dir.empty(), "train.out_dir", "nothing", "a folder for checkpoints and metrics");
  v.require(r.init_from.empty() || std::filesystem::is_regular_file(std::filesystem::path(r.init_from) / "model.safetensors", ec),
            "train.init_from", "'" + r.init_from + "' (no model.safetensors in it)", "a folder written by longnet export");
  v.require(r.max_skips >= 0, "train.max_skips", r.max_skips, "an integer >= 0");
  v.require(r.rollback_lr_factor > 0 && r.rollback_lr_factor <= 1, "train.rollback_lr_factor", r.rollback_lr_factor,
            "a number in (0, 1]");

  const auto& ds = c.distributed;
  v.require(ds.sequence_parallel >= 1 && ds.sequence_parallel <= 4096, "distributed.sequence_parallel",
            ds.sequence_parallel, "an integer in [1, 4096] (ranks sharing each sequence; 1: data parallel only)");
  v.require(c.data.seq_len >= 2 * ds.sequence_parallel, "distributed.sequence_parallel", ds.sequence_parallel,
            "at most data.seq_len / 2 = " + std::to_string(c.data.seq_len / 2) +
                " (each sequence rank holds two pieces of every window)");
  v.require(ds.timeout_s >= 1, "distributed.timeout_s", ds.timeout_s, "an integer >= 1 (seconds)");
  v.require(ds.bucket_mb >= 1 && ds.bucket_mb <= 4096, "distributed.bucket_mb", ds.bucket_mb, "an integer in [1, 4096]");
}

// Section `name` of root into o, through its field list (fields(o, f) calls f(key, field)).
template <typename O, typename Fields>
void read_section(const YAML::Node& root, const std::string& name, const std::string& source, O& o,
                  const Fields& fields) {
  Section section(root[name], name, source);
  fields(o, [&](const char* key, auto& field) { section.field(key, field); });
  section.finish();
}

template <typename T>
void emit(YAML::Emitter& out, const T& v) {
  if constexpr (std::is_enum_v<T>) {
    out << name_of(v);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    out << YAML::Flow << v;
  } else if constexpr (std::is_same_v<T, std::vector<std::pair<int64_t, int64_t>>>) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& [a, b] : v) out << YAML::Flow << YAML::BeginSeq << a << b << YAML::EndSeq;
    out << YAML::EndSeq;
  } else if constexpr (std::is_same_v<T, model::CheckpointPolicy>) {
    switch (v.mode) {
      case model::CheckpointPolicy::Mode::kNone: out << "none"; break;
      case model::CheckpointPolicy::Mode::kBlocks: out << "blocks"; break;
      case model::CheckpointPolicy::Mode::kEveryK:
        out << YAML::Flow << YAML::BeginMap << YAML::Key << "every_k" << YAML::Value << v.every_k << YAML::EndMap;
        break;
    }
  } else {
    out << v;
  }
}

// Section `name` from o, through its field list.
template <typename O, typename Fields>
void write_section(YAML::Emitter& out, const std::string& name, const O& o, const Fields& fields) {
  out << YAML::Key << name << YAML::Value << YAML::BeginMap;
  fields(o, [&](const char* key, const auto& field) {
    out << YAML::Key << key << YAML::Value;
    emit(out, field);
  });
  out << YAML::EndMap;
}

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) throw ConfigError(source + ": expected a mapping of sections (data, tokenizer, model, attention, train, distributed)");
    return root;
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + assignment + "': expected key.path=value");
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::ParserException& e) {
    throw ConfigError("--set '" + assignment + "': the value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> keys;
  std::stringstream ss(path);
  for (std::string k; std::getline(ss, k, '.');) {
    if (k.empty()) throw ConfigError("--set '" + assignment + "': empty key in '" + path + "'");
    keys.push_back(k);
  }
  // yaml-cpp nodes are handles: walk down by reassigning copies, creating maps as needed.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = chain.back()[keys[i]];
    if (next && !next.IsNull() && !next.IsMap())
      throw ConfigError("--set '" + assignment + "': '" + keys[i] + "' is not a section");
    chain.push_back(next);
  }
  chain.back()[keys.back()] = value;
}

RunConfig parse_config(const std::string& yaml_text, const std::string& source,
                       const std::vector<std::string>& overrides) {
  YAML::Node root = load_yaml(yaml_text, source);
  for (const auto& o : overrides) apply_override(root, o);
  static const std::set<std::string> sections = {"data", "tokenizer", "model", "attention", "train", "distributed"};
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) throw ConfigError(source + ": a section name that is not a name (expected one of attention, data, distributed, model, tokenizer, train)");
    const std::string key = kv.first.Scalar();
    if (!sections.count(key))
      throw ConfigError(source + ": " + key + ": unknown section (valid: attention, data, distributed, model, tokenizer, train)");
  }

  RunConfig c;
  c.source = source;
  c.model.max_seq_len = 0;  // 0 until validated: follows data.seq_len unless set
  read_section(root, "data", source, c.data, [](auto& o, auto&& f) { data::data_fields(o, f); });
  read_section(root, "tokenizer", source, c.tokenizer, [](auto& o, auto&& f) { data::tokenizer_fields(o, f); });
  read_section(root, "model", source, c.model, [](auto& o, auto&& f) { model::model_fields(o, f); });
  read_section(root, "attention", source, c.model.attention,
               [](auto& o, auto&& f) { attention::attention_fields(o, f); });
  read_section(root, "train", source, c.train, [](auto& o, auto&& f) { train_fields(o, f); });
  read_section(root, "distributed", source, c.distributed, [](auto& o, auto&& f) { distributed_fields(o, f); });

  validate(c);
  return c;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw ConfigError(path + ": config file not found (expected a YAML file such as configs/quickstart.yaml)");
  return parse_config(data::read_file(path), path, overrides);
}

attention::AttentionOptions override_attention(attention::AttentionOptions options,
                                               const std::vector<std::string>& overrides, int64_t seq_len,
                                               int64_t n_heads, const std::string& source) {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& o : overrides) {
    if (o.rfind("attention.", 0) != 0) throw ConfigError(source + ": --set '" + o + "': expected an attention.* key");
    apply_override(root, o);
  }
  read_section(root, "attention", source, options, [](auto& o, auto&& f) { attention::attention_fields(o, f); });
  attention::register_builtin_kernels();
  const Validator v(source);
  for (const auto& p : attention::check_options(options, {seq_len, n_heads})) v.require(false, p.key, p.value, p.expected);
  return options;
}

std::string to_yaml(const RunConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  write_section(out, "data", c.data, [](auto& o, auto&& f) { data::data_fields(o, f); });
  write_section(out, "tokenizer", c.tokenizer, [](auto& o, auto&& f) { data::tokenizer_fields(o, f); });
  write_section(out, "model", c.model, [](auto& o, auto&& f) { model::model_fields(o, f); });
  write_section(out, "attention", c.model.attention, [](auto& o, auto&& f) { attention::attention_fields(o, f); });
  write_section(out, "train", c.train, [](auto& o, auto&& f) { train_fields(o, f); });
  write_section(out, "distributed", c.distributed, [](auto& o, auto&& f) { distributed_fields(o, f); });
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void resolve_vocab(RunConfig& c, int64_t tokenizer_vocab, const std::string& tokenizer_path) {
  if (c.model.vocab_size == 0) {
    c.model.vocab_size = tokenizer_vocab;
  } else if (c.model.vocab_size != tokenizer_vocab) {
    throw ConfigError(c.source + ": model.vocab_size: " + std::to_string(c.model.vocab_size) + " does not match the " +
                      std::to_string(tokenizer_vocab) + " pieces of tokenizer '" + tokenizer_path +
                      "' (set model.vocab_size: 0 to follow the tokenizer, or retrain it)");
  }
}

int resolved_threads(const TrainOptions& options, int local_ranks) {
  if (options.threads > 0) return static_cast<int>(options.threads);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, local_ranks));
}

}  // namespace longnet::train
