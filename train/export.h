#pragma once
// Weights that leave the binary: safetensors files (the format of Hugging Face's safetensors
// package: u64 little-endian header length, a JSON header naming each tensor's dtype, shape and
// data_offsets, padded with spaces to 8 bytes, then the tensors' bytes), an export folder
// (`longnet export`), and the way back (`train.init_from`). Tensor names are the model's
// parameter names (docs/usage.md, "Export").
#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/lm.h"
#include "train/options.h"

namespace longnet::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The bytes of a safetensors file holding tensors (CPU, any of float32, bfloat16, float16,
// float64, int64, int32), in that order, with "format": "pt" and metadata in __metadata__.
std::string safetensors_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});
// Reads one; throws DataError naming the file and what is wrong (a header past the file's end,
// a dtype it does not know, a shape whose bytes differ from its offsets, offsets out of the data).
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path);

// Writes <out_dir>/model.safetensors (every parameter, float32), config.json (the model and
// attention sections of config, resolved, as in YAML) and tokenizer.model (a copy of
// tokenizer_path). Each file atomically.
void export_model(const RunConfig& config, model::LanguageModel& model, const std::string& tokenizer_path,
                  const std::string& out_dir);

// train.init_from: copies the parameters of <dir>/model.safetensors into model. Throws
// CheckpointError naming the first tensor whose name or shape does not fit.
void init_from_export(const std::string& dir, model::LanguageModel& model);

}  // namespace longnet::train
