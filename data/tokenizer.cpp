#include "data/tokenizer.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <unordered_map>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/progress.h"

namespace longnet::data {
namespace {

// Feeds the lines of the training documents to the SentencePiece trainer.
class LineIterator : public SpmSentences {
 public:
  explicit LineIterator(const std::vector<Document>& docs) : docs_(docs) { advance(); }
  bool done() const override { return doc_ >= docs_.size(); }
  void next() override { advance(); }
  const std::string& value() const override { return line_; }

 private:
  void advance() {
    while (doc_ < docs_.size()) {
      const std::string& text = docs_[doc_].text;
      if (pos_ >= text.size()) {
        ++doc_;
        pos_ = 0;
        continue;
      }
      size_t end = text.find('\n', pos_);
      if (end == std::string::npos) end = text.size();
      line_.assign(text, pos_, end - pos_);
      pos_ = end + 1;
      if (!line_.empty()) return;
    }
  }

  const std::vector<Document>& docs_;
  size_t doc_ = 0, pos_ = 0;
  std::string line_;
};

}  // namespace

Tokenizer::Tokenizer(const std::string& path) : path_(path) {
  if (!std::filesystem::exists(path))
    throw DataError("tokenizer.path: '" + path + "' does not exist (run `longnet tokenizer CONFIG` or `longnet train CONFIG` to create it)");
  serialized_ = read_file(path);
  std::string error;
  sp_ = spm().load(serialized_, &error);
  if (!sp_) throw DataError("tokenizer.path: '" + path + "' is not a SentencePiece model: " + error);
  if (sp_->eos_id() < 0)
    throw DataError("tokenizer.path: '" + path + "' has no </s> piece; longnet needs one to separate documents (retrain it with `longnet tokenizer`)");
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  std::string error;
  if (!sp_->encode(text, &ids, &error)) throw DataError(path_ + ": encoding failed: " + error);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string text, error;
  if (!sp_->decode(ids, &text, &error)) throw DataError(path_ + ": decoding failed: " + error);
  return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->piece_size(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }

void train_tokenizer(const TokenizerOptions& options, const Corpus& corpus) {
  const bool is_char = options.type == "char";
  std::unordered_map<std::string, std::string> args = {
      {"model_type", options.type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"user_defined_symbols", "\n"},
      {"character_coverage", "1.0"},
      {"byte_fallback", is_char ? "false" : "true"},
      {"split_digits", options.split_digits ? "true" : "false"},
      // char: the corpus decides the alphabet; vocab_size is only an upper bound.
      {"hard_vocab_limit", is_char ? "false" : "true"},
      {"unk_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", "2"},
      {"minloglevel", "2"},
  };
  spdlog::info("training {} tokenizer (vocab {}) on {} documents, {:.1f} MB", options.type,
               options.vocab_size, corpus.train.size(), corpus.train_bytes() / 1e6);
  LineIterator lines(corpus.train);
  std::string model, error;
  bool trained;
  {
    Progress progress("training the tokenizer", 0, "");
    trained = spm().train(args, &lines, &model, &error);
  }
  if (!trained)
    throw DataError("tokenizer: SentencePiece training failed for '" + options.path + "': " + error +
                    " (check tokenizer.vocab_size and tokenizer.type)");
  const std::filesystem::path path(options.path);
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  write_file_atomic(path, model);
  spdlog::info("wrote tokenizer {} ({} pieces)", options.path, Tokenizer(options.path).vocab_size());
}

}  // namespace longnet::data
