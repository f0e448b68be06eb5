#include "train/export.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "train/config.h"

namespace longnet::train {
namespace {

namespace fs = std::filesystem;

// safetensors dtype names; LibTorch's tensors are little-endian on every platform it runs on.
const std::vector<std::pair<std::string, torch::ScalarType>> kDtypes = {
    {"F32", torch::kFloat32}, {"BF16", torch::kBFloat16}, {"F16", torch::kFloat16},
    {"F64", torch::kFloat64}, {"I64", torch::kInt64},     {"I32", torch::kInt32}};

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : kDtypes)
    if (type == t) return name;
  TORCH_CHECK(false, "safetensors: no name for dtype ", t);
}

// A YAML scalar as JSON: integer, number, boolean or string, as it reads.
nlohmann::json to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& kv : node) j[kv.first.Scalar()] = to_json(kv.second);
    return j;
  }
  if (node.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : node) j.push_back(to_json(v));
    return j;
  }
  if (!node.IsScalar()) return nullptr;
  const std::string& s = node.Scalar();
  int64_t i;
  double d;
  bool b;
  if (YAML::convert<int64_t>::decode(node, i)) return i;
  if (YAML::convert<double>::decode(node, d)) return d;
  if (YAML::convert<bool>::decode(node, b)) return b;
  return s;
}

[[noreturn]] void refuse(const std::string& path, const std::string& why) { throw DataError(path + ": " + why); }

}  // namespace

std::string safetensors_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = {{"format", "pt"}};
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(c);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  const uint64_t len = json.size();
  std::memcpy(out.data(), &len, 8);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  const std::string bytes = data::read_file(path);
  if (bytes.size() < 8) refuse(path, "not a safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t len;
  std::memcpy(&len, bytes.data(), 8);
  if (len > bytes.size() - 8)
    refuse(path, "its header claims " + std::to_string(len) + " bytes, the file holds " + std::to_string(bytes.size() - 8) + " after the length");
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(len), nullptr, false);
  if (!header.is_object()) refuse(path, "its header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - len;
  const char* data = bytes.data() + 8 + len;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() || !entry.contains("shape") ||
        !entry["shape"].is_array() || !entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2)
      refuse(path, where + ": expected an object with dtype, shape and data_offsets [begin, end]");
    torch::ScalarType type = torch::kFloat32;
    bool known = false;
    for (const auto& [n, t] : kDtypes)
      if (n == entry["dtype"].get<std::string>()) type = t, known = true;
    if (!known) refuse(path, where + ": dtype '" + entry["dtype"].get<std::string>() + "' is not one of F32, BF16, F16, F64, I64, I32");
    std::vector<int64_t> shape;
    uint64_t elements = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) refuse(path, where + ": its shape holds '" + d.dump() + "', not a size");
      const uint64_t n = d.get<uint64_t>();
      if (n != 0 && elements > data_size / n) refuse(path, where + ": its shape holds more elements than the file has bytes");
      elements *= n;
      shape.push_back(static_cast<int64_t>(n));
    }
    const auto& offs = entry["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) refuse(path, where + ": data_offsets are not sizes");
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    const uint64_t size = elements * static_cast<uint64_t>(c10::elementSize(type));
    if (begin > end || end > data_size || end - begin != size)
      refuse(path, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") do not hold its " +
                       std::to_string(size) + " bytes within the " + std::to_string(data_size) + " bytes of data");
    auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
    if (size > 0) std::memcpy(t.data_ptr(), data + begin, size);
    out.emplace(name, t);
  }
  return out;
}

void export_model(const RunConfig& config, model::LanguageModel& model, const std::string& tokenizer_path,
                  const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw DataError(out_dir + ": cannot create the export folder: " + ec.message());
  NamedTensors tensors;
  for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value().detach().to(torch::kFloat32));
  data::write_file_atomic(fs::path(out_dir) / "model.safetensors",
                          safetensors_bytes(tensors, {{"producer", "longnet " LONGNET_VERSION}}));
  const YAML::Node resolved = YAML::Load(to_yaml(config));
  nlohmann::ordered_json cfg;
  cfg["longnet_export"] = 1;
  cfg["model"] = to_json(resolved["model"]);
  cfg["attention"] = to_json(resolved["attention"]);
  data::write_file_atomic(fs::path(out_dir) / "config.json", cfg.dump(2) + "\n");
  data::write_file_atomic(fs::path(out_dir) / "tokenizer.model", data::read_file(tokenizer_path));
}

void init_from_export(const std::string& dir, model::LanguageModel& model) {
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(path)) throw CheckpointError("train.init_from: " + path + " does not exist (expected a folder written by longnet export)");
  std::map<std::string, torch::Tensor> tensors;
  try {
    tensors = read_safetensors(path);
  } catch (const DataError& e) {
    throw CheckpointError(std::string("train.init_from: ") + e.what());
  }
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  for (const auto& p : params) {
    const auto it = tensors.find(p.key());
    if (it == tensors.end())
      throw CheckpointError("train.init_from: " + path + ": has no tensor '" + p.key() + "' that the model needs (shape " +
                            c10::str(p.value().sizes()) + "): it was exported from a model of other settings");
    if (it->second.sizes() != p.value().sizes())
      throw CheckpointError("train.init_from: " + path + ": tensor '" + p.key() + "' has shape " + c10::str(it->second.sizes()) +
                            ", the model expects " + c10::str(p.value().sizes()) + " (compare its config.json with your model settings)");
    if (!it->second.is_floating_point())
      throw CheckpointError("train.init_from: " + path + ": tensor '" + p.key() + "' is not floating-point");
  }
  for (const auto& [name, t] : tensors)
    if (!params.contains(name))
      throw CheckpointError("train.init_from: " + path + ": tensor '" + name + "' is not a parameter of this model (exported from other settings)");
  for (auto& p : params) p.value().copy_(tensors.at(p.key()));
}

}  // namespace longnet::train
