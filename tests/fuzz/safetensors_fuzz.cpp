// The safetensors reader behind train.init_from: any bytes as <dir>/model.safetensors, read and
// copied into a small model. A file that reads must hold exactly the bytes its header names;
// every refusal is a longnet::Error.
#include <string>

#include "attention/registry.h"
#include "tests/fuzz/fuzz.h"
#include "train/export.h"

using namespace longnet;

namespace {

model::LanguageModel& small_model() {
  static model::LanguageModel m = [] {
    attention::register_builtin_kernels();  // as main() does; parse_config would too
    model::ModelOptions o;
    o.vocab_size = 8;
    o.n_layers = 1;
    o.d_model = 4;
    o.n_heads = 1;
    o.max_seq_len = 4;
    return model::LanguageModel(o);
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet();
  small_model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::scratch() / "model.safetensors";
  fuzz::put(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    size_t bytes = 0;
    for (const auto& [name, t] : train::read_safetensors(path.string())) bytes += t.numel() * t.element_size();
    if (bytes > size) fuzz::fail("tensors of more bytes than the file holds");
    train::init_from_export(fuzz::scratch().string(), small_model());
  } catch (const Error&) {
  }
  return 0;
}
