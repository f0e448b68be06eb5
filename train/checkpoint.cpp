#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/hash.h"
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

// An optimizer state that loaded but does not fit the model (a moment of another shape, a
// negative step) would fail or go wrong at the first update: refuse it here instead.
void check_optimizer_state(const fs::path& file, model::LanguageModel& model, torch::optim::AdamW& optimizer) {
  const auto& states = optimizer.state();
  for (const auto& p : model->named_parameters()) {
    const auto it = states.find(p.value().unsafeGetTensorImpl());
    if (it == states.end()) continue;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    const auto fits = [&](const torch::Tensor& t) {
      return t.defined() && t.sizes() == p.value().sizes() && t.scalar_type() == p.value().scalar_type();
    };
    if (!fits(st.exp_avg()) || !fits(st.exp_avg_sq()) || st.step() < 0)
      refuse(file, "the optimizer state of parameter '" + p.key() + "' does not fit it (moments of another shape or type)");
  }
}

// An archive streamed into `path` through an AtomicWriter: a failed write is reported by our
// writer after LibTorch's has finished, never from inside it.
uint64_t save_archive(torch::serialize::OutputArchive& archive, const fs::path& path) {
  data::AtomicWriter w(path);
  archive.save_to([&w](const void* bytes, size_t n) { return w.sink(bytes, n); });
  w.commit();
  return w.checksum();
}

uint64_t save_text(const fs::path& path, const std::string& text) {
  data::write_file_atomic(path, text);
  return data::checksum64(text.data(), text.size());
}

uint64_t file_checksum(const fs::path& path) {
  const std::string bytes = data::read_file(path);
  return data::checksum64(bytes.data(), bytes.size());
}

// The checkpoint's files into `tmp` (a fresh folder), manifest last (each file's size and
// checksum): a folder without one was never finished.
void write_checkpoint_files(const fs::path& tmp, const RunConfig& config, model::LanguageModel& model,
                            torch::optim::AdamW& optimizer, const TrainState& state) {
  std::map<std::string, uint64_t> sums;
  {
    torch::serialize::OutputArchive archive;
    // On the CPU, so that a checkpoint of a GPU run loads anywhere.
    for (const auto& p : model->named_parameters()) archive.write(p.key(), p.value().to(torch::kCPU));
    for (const auto& b : model->named_buffers()) archive.write(b.key(), b.value().to(torch::kCPU), /*is_buffer=*/true);
    sums["model.pt"] = save_archive(archive, tmp / "model.pt");
  }
  {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    sums["optimizer.pt"] = save_archive(archive, tmp / "optimizer.pt");
  }
  {
    torch::serialize::OutputArchive archive;
    archive.write("cpu", rng_state());
    sums["rng.pt"] = save_archive(archive, tmp / "rng.pt");
  }
  sums["config.yaml"] = save_text(tmp / "config.yaml", to_yaml(config));
  const nlohmann::json st = {{"format", kCheckpointFormat}, {"step", state.step}, {"tokens_seen", state.tokens_seen},
                             {"lr_scale", state.lr_scale}, {"skipped", state.skipped}};
  sums["state.json"] = save_text(tmp / "state.json", st.dump(2) + "\n");
  nlohmann::json manifest = {{"format", kCheckpointFormat}, {"files", nlohmann::json::object()},
                             {"checksums", nlohmann::json::object()}};
  for (const auto& f : kFiles) {
    manifest["files"][f] = fs::file_size(tmp / f);
    manifest["checksums"][f] = data::hex64(sums.at(f));
  }
  data::write_file_atomic(tmp / "manifest.json", manifest.dump(2) + "\n");
  data::fsync_path(tmp);
}

}  // namespace

std::string save_checkpoint(const std::string& dir, const RunConfig& config, model::LanguageModel& model,
                            torch::optim::AdamW& optimizer, const TrainState& state, int64_t keep_last) {
  const fs::path root(dir);
  const std::string name = step_name(state.step);
  const fs::path final_path = root / name;
  const fs::path tmp = data::temporary_sibling(final_path);
  // Never a checkpoint of a diverged model: a later run would resume into the same NaNs.
  for (const auto& p : model->named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw Error("checkpoint of step " + std::to_string(state.step) + " not written: parameter '" + p.key() +
                  "' is not finite; the last whole checkpoint is kept");
  // A checkpoint that cannot be written whole (a full disk, a file-size limit, an I/O error)
  // leaves no folder behind and `latest` where it was: the run stops with one line.
  try {
    fs::create_directories(root);
    fs::create_directories(tmp);
    write_checkpoint_files(tmp, config, model, optimizer, state);
    if (fs::exists(final_path)) fs::remove_all(final_path);  // same step written again after a resume
    fs::rename(tmp, final_path);
    data::fsync_path(root);
    data::write_file_atomic(root / "latest", name + "\n");
  } catch (const std::exception& e) {  // DataError from our writers, filesystem_error from fs::
    std::error_code ec;
    fs::remove_all(tmp, ec);
    const auto* fs_error = dynamic_cast<const fs::filesystem_error*>(&e);
    std::string why = fs_error ? fs_error->path1().string() + ": " + fs_error->code().message() : e.what();
    for (size_t at; (at = why.find(tmp.string())) != std::string::npos;) why.replace(at, tmp.string().size(), final_path.string());
    std::string kept = "there is no earlier checkpoint";
    if (fs::exists(root / "latest", ec)) {
      std::string last = data::read_file(root / "latest");
      while (!last.empty() && (last.back() == '\n' || last.back() == ' ')) last.pop_back();
      kept = "the last whole checkpoint, " + (root / last).string() + ", is kept and a later run resumes from it";
    }
    throw CheckpointError("checkpoint of step " + std::to_string(state.step) + " not written: " + why + "; " + kept);
  }

  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep_last < steps.size(); ++i)
    if (steps[i].filename() != name) fs::remove_all(steps[i]);
  return final_path.string();
}

std::string checkpoint_problem(const std::string& path) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) return dir.string() + ": not a checkpoint directory";
  const fs::path manifest_path = dir / "manifest.json";
  if (!fs::exists(manifest_path)) return manifest_path.string() + ": missing: the checkpoint was never completed";
  const auto manifest = nlohmann::json::parse(data::read_file(manifest_path), nullptr, false);
  const std::string unreadable =
      manifest_path.string() + ": unreadable or of another format (expected format " + std::to_string(kCheckpointFormat) + ")";
  try {
    if (!manifest.is_object() || manifest.value("format", -1) != kCheckpointFormat || !manifest.contains("files") ||
        !manifest.at("files").is_object())
      return unreadable;
    const auto& files = manifest.at("files");
    // Checkpoints written before checksums were kept have sizes only.
    const auto sums = manifest.value("checksums", nlohmann::json::object());
    for (const auto& f : kFiles) {
      const fs::path file = dir / f;
      if (!fs::exists(file)) return file.string() + ": missing from the checkpoint";
      const auto expected = files.value(f, uintmax_t{0});
      const auto actual = fs::file_size(file);
      if (actual != expected)
        return file.string() + ": truncated or modified: " + std::to_string(actual) + " bytes, the manifest says " +
               std::to_string(expected);
      if (sums.is_object() && sums.contains(f) && sums.at(f) != data::hex64(file_checksum(file)))
        return file.string() + ": corrupt: its checksum differs from the manifest's";
    }
  } catch (const nlohmann::json::exception&) {  // a field of the wrong type
    return unreadable;
  }
  return "";
}

std::optional<std::string> latest_checkpoint(const std::string& dir) {
  const fs::path latest = fs::path(dir) / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::string name = data::read_file(latest);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const fs::path path = fs::path(dir) / name;
  // Only a step_* folder beside it: never a path that leads elsewhere.
  const bool step_folder = name.rfind("step_", 0) == 0 && name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
  std::error_code ec;  // a name the file system refuses (longer than NAME_MAX) is no folder, not a throw
  const std::string problem = !step_folder || !fs::is_directory(path, ec)
                                  ? latest.string() + " points at '" + name + "', which is not a checkpoint directory"
                                  : checkpoint_problem(path.string());
  if (problem.empty()) return path.string();
  // The newest whole one before it, saying so; none: refuse rather than start over.
  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0 && e.path().filename() != name)
      steps.push_back(e.path());
  std::sort(steps.rbegin(), steps.rend());
  for (const auto& s : steps)
    if (checkpoint_problem(s.string()).empty()) {
      spdlog::warn("{}; using {}, the newest whole checkpoint, instead", problem, s.string());
      return s.string();
    }
  throw CheckpointError(problem + "; no other whole checkpoint under " + dir + " (delete " + dir + " to start over)");
}

std::string resolve_checkpoint(const RunConfig& config, const std::string& flag, const std::string& command) {
  if (!flag.empty()) return flag;
  const auto latest = latest_checkpoint(config.train.out_dir + "/checkpoints");
  if (!latest)
    throw CheckpointError(config.train.out_dir + "/checkpoints: no checkpoint (train first: longnet train " + config.source +
                          ", or pass " + command + " --checkpoint DIR)");
  return *latest;
}

std::string checkpoint_config(const std::string& path) {
  std::error_code ec;  // a path the file system refuses (too long, a loop) is refused here, not thrown
  if (!fs::is_directory(path, ec))
    refuse(path, "not a checkpoint directory (expected a step_* folder under <train.out_dir>/checkpoints" +
                     (ec ? "; " + ec.message() : std::string()) + ")");
  const fs::path file = fs::path(path) / "config.yaml";
  if (!fs::exists(file, ec)) refuse(file, "missing; this is not a longnet checkpoint directory");
  return data::read_file(file);
}

std::string model_signature(const RunConfig& config) {
  RunConfig only;
  only.model = config.model;
  only.model.loss_chunk = only.model.mlp_chunk = 0;  // how the work is cut, not what is computed
  const std::string yaml = to_yaml(only);
  return yaml.substr(yaml.find("model:"));
}

RunConfig saved_config(const std::string& path, const std::vector<std::string>& sets) {
  const std::string text = checkpoint_config(path), source = path + "/config.yaml";
  const RunConfig saved = parse_config(text, source);
  std::vector<std::string> model_sets;
  for (const auto& set : sets) {
    const std::string key = set.substr(0, set.find('='));
    const std::string section = key.substr(0, key.find('.'));
    if (section != "attention" && section != "model") continue;
    if (section == "model" && model_signature(parse_config(text, source, {set})) != model_signature(saved))
      throw ConfigError("--set '" + set + "': the model is the checkpoint's (" + source +
                        "); only attention.*, model.loss_chunk and model.mlp_chunk can change after training");
    model_sets.push_back(set);
  }
  if (model_sets.empty()) return saved;
  RunConfig config = parse_config(text, source, model_sets);
  const auto attention_of = [](const RunConfig& c) {
    RunConfig only;
    only.model.attention = c.model.attention;
    return to_yaml(only);
  };
  if (attention_of(config) != attention_of(saved))
    spdlog::info("attention: {} from --set, the checkpoint's model trained with {}", config.model.attention.kind,
                 saved.model.attention.kind);
  return config;
}

TrainState load_checkpoint(const std::string& path, model::LanguageModel& model, torch::optim::AdamW* optimizer) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) refuse(dir, "not a checkpoint directory");
  if (const auto problem = checkpoint_problem(path); !problem.empty()) throw CheckpointError(problem);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from((dir / "model.pt").string(), torch::Device(torch::kCPU));
  } catch (const std::exception& e) {  // c10::Error, or torch::jit::ErrorReport from the archive's code
    refuse(dir / "model.pt", "cannot be read as a LibTorch archive");
  }
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    torch::Tensor t;
    bool found = false;
    try {
      found = archive.try_read(p.key(), t);
    } catch (const std::exception& e) {
      refuse(dir / "model.pt", "parameter '" + p.key() + "' cannot be read from it");
    }
    if (found && !t.is_floating_point())
      refuse(dir / "model.pt", "parameter '" + p.key() + "' is of type " + std::string(c10::toString(t.scalar_type())) +
                                   ", not a floating-point tensor");
    if (!found)
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
    } catch (const std::exception& e) {
      refuse(dir / "optimizer.pt", "cannot be restored into this optimizer");
    }
    check_optimizer_state(dir / "optimizer.pt", model, *optimizer);
    try {
      torch::serialize::InputArchive ra;
      ra.load_from((dir / "rng.pt").string());
      torch::Tensor state;
      ra.read("cpu", state);
      set_rng_state(state);
    } catch (const std::exception& e) {
      refuse(dir / "rng.pt", "cannot be read as the CPU generator's state");
    }
  }
  const auto st = nlohmann::json::parse(data::read_file(dir / "state.json"), nullptr, false);
  TrainState state;
  bool readable = st.is_object() && st.contains("step");
  if (readable) try {
      state.step = st.value("step", int64_t{0});
      state.tokens_seen = st.value("tokens_seen", int64_t{0});
      state.lr_scale = st.value("lr_scale", 1.0);
      state.skipped = st.value("skipped", int64_t{0});
    } catch (const nlohmann::json::exception&) {  // a field of the wrong type
      readable = false;
    }
  if (!readable)
    refuse(dir / "state.json", "unreadable (expected an object with integers step, tokens_seen, skipped and a number lr_scale)");
  if (state.step < 0 || state.tokens_seen < 0 || state.skipped < 0 || !(state.lr_scale > 0 && state.lr_scale <= 1))
    refuse(dir / "state.json", "out of range (expected step, tokens_seen and skipped >= 0, 0 < lr_scale <= 1)");
  return state;
}

}  // namespace longnet::train
