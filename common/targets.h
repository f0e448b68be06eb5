#pragma once
// The target id of a position whose next token is not to be predicted: the loss and its
// gradient skip it (model::LanguageModel::loss_sum, model/chunked_loss.h). Training windows
// set it where the next token is random by construction, as a passkey's first appearance
// (data/sampler.h).
#include <cstdint>

namespace longnet {

inline constexpr int64_t kNoTarget = -1;

}  // namespace longnet
