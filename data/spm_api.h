#pragma once
// The boundary to SentencePiece. libsentencepiece carries its own copy of protobuf 3.14 and
// exports its symbols, while LibTorch loads the system libprotobuf 3.21: in one symbol
// namespace the two mix and the process crashes at start-up. So SentencePiece lives in a
// separate module (spm_module.cpp), dlopen()ed with RTLD_LOCAL | RTLD_DEEPBIND so that it
// binds to its own protobuf, and is reached only through these interfaces.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace longnet::data {

class SpmModel {
 public:
  virtual ~SpmModel() = default;
  virtual bool encode(const std::string& text, std::vector<int>* ids, std::string* error) const = 0;
  virtual bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const = 0;
  virtual int piece_size() const = 0;
  virtual int eos_id() const = 0;
};

// Yields training sentences; done() is checked before each value().
class SpmSentences {
 public:
  virtual ~SpmSentences() = default;
  virtual bool done() const = 0;
  virtual void next() = 0;
  virtual const std::string& value() const = 0;
};

class SpmApi {
 public:
  virtual ~SpmApi() = default;
  // nullptr and *error set when `serialized` is not a model.
  virtual std::unique_ptr<SpmModel> load(const std::string& serialized, std::string* error) const = 0;
  // SentencePieceTrainer::Train with keyword arguments; the model's bytes into *model.
  virtual bool train(const std::unordered_map<std::string, std::string>& args, SpmSentences* sentences,
                     std::string* model, std::string* error) const = 0;
};

// The module's one exported symbol.
extern "C" const SpmApi* longnet_spm_api();

// Loads the module once (LONGNET_SPM_MODULE overrides its path); throws DataError.
const SpmApi& spm();

}  // namespace longnet::data
