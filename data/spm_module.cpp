// Built as its own shared module and dlopen()ed: see spm_api.h for why.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "data/spm_api.h"

namespace longnet::data {
namespace {

class Model : public SpmModel {
 public:
  bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const override {
    const auto s = sp.Encode(text, ids);
    if (!s.ok()) *error = s.ToString();
    return s.ok();
  }
  bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const override {
    const auto s = sp.Decode(ids, text);
    if (!s.ok()) *error = s.ToString();
    return s.ok();
  }
  int piece_size() const override { return sp.GetPieceSize(); }
  int eos_id() const override { return sp.eos_id(); }

  sentencepiece::SentencePieceProcessor sp;
};

class Iterator : public sentencepiece::SentenceIterator {
 public:
  explicit Iterator(SpmSentences* s) : s_(s) {}
  bool done() const override { return s_->done(); }
  void Next() override { s_->next(); }
  const std::string& value() const override { return s_->value(); }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  SpmSentences* s_;
};

class Api : public SpmApi {
 public:
  std::unique_ptr<SpmModel> load(const std::string& serialized, std::string* error) const override {
    auto m = std::make_unique<Model>();
    const auto s = m->sp.LoadFromSerializedProto(serialized);
    if (!s.ok()) {
      *error = s.ToString();
      return nullptr;
    }
    return m;
  }
  bool train(const std::unordered_map<std::string, std::string>& args, SpmSentences* sentences, std::string* model,
             std::string* error) const override {
    Iterator it(sentences);
    const auto s = sentencepiece::SentencePieceTrainer::Train(args, &it, model);
    if (!s.ok()) *error = s.ToString();
    return s.ok();
  }
};

}  // namespace
}  // namespace longnet::data

extern "C" __attribute__((visibility("default"))) const longnet::data::SpmApi* longnet_spm_api() {
  static const longnet::data::Api api;
  return &api;
}
