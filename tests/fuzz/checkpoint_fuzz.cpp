// A checkpoint folder as `longnet train` (resume) and `longnet eval` read it: latest_checkpoint,
// the saved config parsed, then load_checkpoint into a model and optimizer. The input replaces
// one file of the newest of two whole checkpoints; its last byte chooses which, and whether the
// manifest is rewritten to match the new file (so that the bytes get past the size and checksum
// check and reach the LibTorch archive reader, the JSON and the YAML). Whatever the files hold,
// the readers either load a checkpoint or refuse with a longnet::Error.
#include <fuzzer/FuzzedDataProvider.h>

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <string>

#include "common/atomic_file.h"
#include "common/hash.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"

#include "tests/fuzz/fuzz.h"

using namespace longnet;
namespace fs = std::filesystem;

namespace {

constexpr std::array<const char*, 7> kTargets = {"manifest.json", "state.json", "config.yaml", "model.pt",
                                                 "optimizer.pt", "rng.pt", "latest"};

const char* kConfig = R"(
data: {path: corpus.txt, seq_len: 8, batch_size: 1}
tokenizer: {path: tok.model}
model: {vocab_size: 16, n_layers: 1, d_model: 8, n_heads: 2}
attention: {kind: dense}
train: {steps: 2, out_dir: run}
)";

struct Fixture {
  train::RunConfig config;
  fs::path root, newest;
  std::map<std::string, std::string> originals;  // the newest checkpoint's files, and latest
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture f;
    fs::current_path(fuzz::scratch());
    fuzz::put("corpus.txt", "text\n");
    f.config = train::parse_config(kConfig, "checkpoint_fuzz.cpp");
    model::LanguageModel model(f.config.model);
    auto optimizer = train::make_optimizer(model, f.config.train);
    f.root = fuzz::scratch() / "run" / "checkpoints";
    for (int64_t step : {1, 2}) f.newest = train::save_checkpoint(f.root.string(), f.config, model, *optimizer, {step, 8 * step}, 2);
    for (const char* name : kTargets)
      f.originals[name] = data::read_file(std::string(name) == "latest" ? f.root / name : f.newest / name);
    return f;
  }();
  return f;
}

fs::path where(const Fixture& f, const std::string& name) { return name == "latest" ? f.root / name : f.newest / name; }

}  // namespace

// LONGNET_FUZZ_SEEDS=DIR: writes the seed inputs (each file of the checkpoint as it is, with and
// without the manifest rewritten) into DIR; tests/fuzz/corpus/checkpoint holds them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet();
  const char* seeds = std::getenv("LONGNET_FUZZ_SEEDS");
  const fs::path dir = seeds ? fs::absolute(seeds) : fs::path();  // before the fixture changes directory
  const auto& f = fixture();
  if (seeds)
    for (size_t i = 0; i < kTargets.size(); ++i)
      for (const uint8_t match : {0x00, 0x80})
        fuzz::put(dir / (std::string(kTargets[i]) + (match ? "-matched" : "")),
                  f.originals.at(kTargets[i]) + static_cast<char>(i | match));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& f = fixture();
  FuzzedDataProvider in(data, size);
  const uint8_t choice = in.ConsumeIntegral<uint8_t>();
  const std::string target = kTargets[choice % kTargets.size()];
  const bool match_manifest = choice & 0x80;
  const std::string bytes = in.ConsumeRemainingBytesAsString();
  fuzz::put(where(f, target), bytes);
  if (match_manifest && target != "manifest.json" && target != "latest") {
    auto manifest = nlohmann::json::parse(f.originals.at("manifest.json"));
    manifest["files"][target] = bytes.size();
    manifest["checksums"][target] = data::hex64(data::checksum64(bytes.data(), bytes.size()));
    fuzz::put(f.newest / "manifest.json", manifest.dump());
  }
  try {
    const auto latest = train::latest_checkpoint(f.root.string());
    if (!latest) fuzz::fail("latest_checkpoint found none beside two checkpoints");
    try {
      train::parse_config(train::checkpoint_config(*latest), *latest + "/config.yaml");
    } catch (const ConfigError&) {  // resume and eval refuse it; the files are still read below
    }
    model::LanguageModel model(f.config.model);
    auto optimizer = train::make_optimizer(model, f.config.train);
    train::load_checkpoint(*latest, model, optimizer.get());
  } catch (const Error&) {
  }
  // Back to two whole checkpoints for the next input.
  fuzz::put(where(f, target), f.originals.at(target));
  fuzz::put(f.newest / "manifest.json", f.originals.at("manifest.json"));
  return 0;
}
