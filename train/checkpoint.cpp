#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "train/config.h"

namespace longnet::train {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kFiles = {"model.pt", "optimizer.pt", "rng.pt", "config.yaml", "state.json"};

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%08lld", static_cast<long long>(step));
  return buf;
}

torch::Tensor rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

[[noreturn]] void refuse(const fs::path& file, const std::string& why) {
  throw CheckpointError(file.string() + ": " + why);
}

}  // namespace

std::string save_checkpoint(const std::string& dir, const RunConfig& config, model::LanguageModel& model,
                            torch::optim::AdamW& optimizer, const TrainState& state, int64_t keep_last) {
  const fs::path root(dir);
  fs::create_directories(root);
  const std::string name = step_name(state.step);
  const fs::path final_path = root / name;
  const fs::path tmp = data::temporary_sibling(final_path);
  fs::create_directories(tmp);

  {
    torch::serialize::OutputArchive archive;
    // On the CPU, so that a checkpoint of a GPU run loads anywhere.
    for (const auto& p : model->named_parameters()) archive.write(p.key(), p.value().to(torch::kCPU));
    for (const auto& b : model->named_buffers()) archive.write(b.key(), b.value().to(torch::kCPU), /*is_buffer=*/true);
    archive.save_to((tmp / "model.pt").string());
  }
  {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to((tmp / "optimizer.pt").string());
  }
  {
    torch::serialize::OutputArchive archive;
    archive.write("cpu", rng_state());
    archive.save_to((tmp / "rng.pt").string());
  }
  data::write_file_atomic(tmp / "config.yaml", to_yaml(config));
  const nlohmann::json st = {{"format", kCheckpointFormat}, {"step", state.step}, {"tokens_seen", state.tokens_seen}};
  data::write_file_atomic(tmp / "state.json", st.dump(2) + "\n");
  nlohmann::json manifest = {{"format", kCheckpointFormat}, {"files", nlohmann::json::object()}};
  for (const auto& f : kFiles) {
    data::fsync_path(tmp / f);
    manifest["files"][f] = fs::file_size(tmp / f);
  }
  // The manifest is written last: a directory without one was never finished.
  data::write_file_atomic(tmp / "manifest.json", manifest.dump(2) + "\n");
  data::fsync_path(tmp);
  if (fs::exists(final_path)) fs::remove_all(final_path);  // same step written again after a resume
  fs::rename(tmp, final_path);
  data::fsync_path(root);
  data::write_file_atomic(root / "latest", name + "\n");

  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep_last < steps.size(); ++i)
    if (steps[i].filename() != name) fs::remove_all(steps[i]);
  return final_path.string();
}

std::optional<std::string> latest_checkpoint(const std::string& dir) {
  const fs::path latest = fs::path(dir) / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::string name = data::read_file(latest);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const fs::path path = fs::path(dir) / name;
  if (name.empty() || !fs::is_directory(path))
    refuse(latest, "points at '" + name + "', which is not a checkpoint directory (delete " + latest.string() +
                       " to start over, or point it at an existing step_* folder)");
  return path.string();
}

std::string checkpoint_config(const std::string& path) {
  if (!fs::is_directory(path)) refuse(path, "not a checkpoint directory (expected a step_* folder under <train.out_dir>/checkpoints)");
  const fs::path file = fs::path(path) / "config.yaml";
  if (!fs::exists(file)) refuse(file, "missing; this is not a longnet checkpoint directory");
  return data::read_file(file);
}

TrainState load_checkpoint(const std::string& path, model::LanguageModel& model, torch::optim::AdamW* optimizer) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) refuse(dir, "not a checkpoint directory");
  const fs::path manifest_path = dir / "manifest.json";
  if (!fs::exists(manifest_path)) refuse(manifest_path, "missing: the checkpoint was never completed (use another step_* folder)");
  const auto manifest = nlohmann::json::parse(data::read_file(manifest_path), nullptr, false);
  if (!manifest.is_object() || manifest.value("format", -1) != kCheckpointFormat)
    refuse(manifest_path, "unreadable or of another format (expected format " + std::to_string(kCheckpointFormat) + ")");
  for (const auto& f : kFiles) {
    const fs::path file = dir / f;
    if (!fs::exists(file)) refuse(file, "missing from the checkpoint");
    const auto expected = manifest["files"].value(f, uintmax_t{0});
    const auto actual = fs::file_size(file);
    if (actual != expected)
      refuse(file, "truncated or modified: " + std::to_string(actual) + " bytes, the manifest says " + std::to_string(expected));
  }

  torch::serialize::InputArchive archive;
  try {
    archive.load_from((dir / "model.pt").string(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    refuse(dir / "model.pt", "cannot be read as a LibTorch archive");
  }
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    torch::Tensor t;
    if (!archive.try_read(p.key(), t))
      refuse(dir / "model.pt", "has no parameter '" + p.key() + "': it was written by a model of another shape");
    if (t.sizes() != p.value().sizes()) {
      std::ostringstream ss;
      ss << "parameter '" << p.key() << "' has shape " << t.sizes() << ", the model expects " << p.value().sizes()
         << ": the checkpoint is from a model of another shape (compare its config.yaml with your config)";
      refuse(dir / "model.pt", ss.str());
    }
    p.value().copy_(t);
  }
  if (optimizer) {
    torch::serialize::InputArchive oa;
    try {
      oa.load_from((dir / "optimizer.pt").string(), model->parameters().front().device());
      optimizer->load(oa);
    } catch (const c10::Error& e) {
      refuse(dir / "optimizer.pt", "cannot be restored into this optimizer");
    }
    torch::serialize::InputArchive ra;
    ra.load_from((dir / "rng.pt").string());
    torch::Tensor state;
    ra.read("cpu", state);
    set_rng_state(state);
  }
  const auto st = nlohmann::json::parse(data::read_file(dir / "state.json"), nullptr, false);
  if (!st.is_object() || !st.contains("step")) refuse(dir / "state.json", "unreadable");
  return {st.value("step", int64_t{0}), st.value("tokens_seen", int64_t{0})};
}

}  // namespace longnet::train
