#include "attention/length_scale.h"

#include <ATen/ops/clamp_min.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/log.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace longnet::attention {

at::Tensor keys_seen(const at::Tensor& positions, int64_t length, bool causal, const DocumentStarts* starts) {
  TORCH_CHECK(positions.dim() == 1 && positions.scalar_type() == at::kLong, "keys_seen takes positions [T] int64");
  const int64_t T = positions.size(0);
  if (!starts) return (causal ? positions + 1 : at::full({T}, length, positions.options())).unsqueeze(0);
  // Documents split the rows of one window (model.document_mask): positions are 0..T-1.
  TORCH_CHECK(length == T, "keys_seen: documents split whole windows, got ", T, " rows of ", length);
  const int64_t B = static_cast<int64_t>(starts->size());
  auto n = at::empty({B, T}, at::kLong);
  auto* out = n.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = (*starts)[static_cast<size_t>(b)];
    for (size_t d = 0; d < row.size(); ++d) {
      const int64_t begin = row[d], end = d + 1 < row.size() ? row[d + 1] : T;
      for (int64_t i = begin; i < end; ++i) out[b * T + i] = causal ? i - begin + 1 : end - begin;
    }
  }
  return n.to(positions.device());
}

at::Tensor length_scale_factors(const at::Tensor& keys_seen, int64_t length_scale) {
  TORCH_CHECK(length_scale >= 2, "length_scale_factors: L = ", length_scale, ", expected 2 or more");
  return at::clamp_min(at::log(keys_seen.to(at::kDouble)) / std::log(static_cast<double>(length_scale)), 1.0);
}

}  // namespace longnet::attention
