#include "attention/dropout.h"

#include <ATen/ops/add.h>
#include <ATen/ops/bitwise_and.h>
#include <ATen/ops/bitwise_right_shift.h>
#include <ATen/ops/bitwise_xor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ge.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace longnet::attention {
namespace {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijection of 64-bit words whose
// every output bit depends on every input bit; hashing a counter with it is a counter-based
// generator in the sense of Salmon et al. 2011 (Random123).
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The positions as the hash takes them: shifted by the key's position0.
std::vector<int64_t> positions_on_cpu(const DropoutKey& key, const at::Tensor& pos) {
  TORCH_CHECK(pos.dim() == 1 && pos.scalar_type() == at::kLong, "dropout positions must be [T] int64");
  auto p = pos.to(at::kCPU).contiguous();
  std::vector<int64_t> out(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel());
  for (auto& x : out) x += key.position0;
  return out;
}

// Pair (i, j) is kept when the top 53 bits of its hash, as a number in [0, 1), are >= rate.
template <typename T>
void fill(const DropoutKey& key, uint64_t stream, const std::vector<int64_t>& q, const std::vector<int64_t>& k,
          T* out) {
  const T keep = static_cast<T>(1.0 / (1.0 - key.rate));
  const uint64_t threshold = static_cast<uint64_t>(std::ldexp(key.rate, 53));
  for (size_t i = 0; i < q.size(); ++i) {
    const uint64_t row = mix(stream ^ static_cast<uint64_t>(q[i]));
    for (size_t j = 0; j < k.size(); ++j) {
      const uint64_t h = mix(row ^ (static_cast<uint64_t>(k[j]) * 0xD6E8FEB86659FD93ULL));
      out[i * k.size() + j] = (h >> 11) >= threshold ? keep : T(0);
    }
  }
}

at::Tensor factors_on_cpu(const DropoutKey& key, uint64_t stream, const std::vector<int64_t>& q,
                          const std::vector<int64_t>& k, at::ScalarType dtype) {
  const auto fill_type = dtype == at::kDouble ? at::kDouble : at::kFloat;
  auto out = at::empty({static_cast<int64_t>(q.size()), static_cast<int64_t>(k.size())}, at::dtype(fill_type));
  if (fill_type == at::kDouble) fill(key, stream, q, k, out.data_ptr<double>());
  else fill(key, stream, q, k, out.data_ptr<float>());
  return out;
}

// The unsigned 64-bit words of the hash as int64 tensors: addition, multiplication and xor
// give the same bits; a right shift must not copy the sign bit in.
int64_t bits(uint64_t x) {
  int64_t v;
  std::memcpy(&v, &x, sizeof v);
  return v;
}

at::Tensor logical_shift_right(const at::Tensor& x, int s) {
  return at::bitwise_and(at::bitwise_right_shift(x, s), bits((uint64_t{1} << (64 - s)) - 1));
}

at::Tensor mix_tensor(const at::Tensor& x0) {
  auto x = at::add(x0, bits(0x9E3779B97F4A7C15ULL));
  x = at::mul(at::bitwise_xor(x, logical_shift_right(x, 30)), bits(0xBF58476D1CE4E5B9ULL));
  x = at::mul(at::bitwise_xor(x, logical_shift_right(x, 27)), bits(0x94D049BB133111EBULL));
  return at::bitwise_xor(x, logical_shift_right(x, 31));
}

}  // namespace

at::Tensor dropout_factors_by_tensor_ops(const DropoutKey& key, uint64_t stream, const at::Tensor& q_pos,
                                         const at::Tensor& k_pos, at::ScalarType dtype, const at::Device& device) {
  TORCH_CHECK(key.rate > 0 && key.rate < 1, "dropout rate must be in (0, 1)");
  TORCH_CHECK(q_pos.dim() == 1 && k_pos.dim() == 1 && q_pos.scalar_type() == at::kLong && k_pos.scalar_type() == at::kLong,
              "dropout positions must be [T] int64");
  const auto q = at::add(q_pos.to(device), key.position0), k = at::add(k_pos.to(device), key.position0);
  auto row = mix_tensor(at::bitwise_xor(q, bits(stream)));                                   // [Tq]
  auto h = mix_tensor(at::bitwise_xor(row.unsqueeze(1), at::mul(k, bits(0xD6E8FEB86659FD93ULL)).unsqueeze(0)));  // [Tq, Tk]
  const auto threshold = static_cast<int64_t>(std::ldexp(key.rate, 53));
  auto kept = at::ge(logical_shift_right(h, 11), threshold);
  const auto fill_type = dtype == at::kDouble ? at::kDouble : at::kFloat;
  return at::mul(kept.to(fill_type), 1.0 / (1.0 - key.rate)).to(dtype);
}

std::vector<int64_t> DropoutKey::pack() const {
  int64_t rate_bits;
  std::memcpy(&rate_bits, &rate, sizeof rate_bits);
  return {rate_bits, static_cast<int64_t>(seed), static_cast<int64_t>(step), static_cast<int64_t>(layer), sample0,
          position0};
}

DropoutKey DropoutKey::unpack(const std::vector<int64_t>& p) {
  TORCH_CHECK(p.size() == 6, "a packed DropoutKey has 6 entries");
  DropoutKey k;
  std::memcpy(&k.rate, &p[0], sizeof k.rate);
  k.seed = static_cast<uint64_t>(p[1]);
  k.step = static_cast<uint64_t>(p[2]);
  k.layer = static_cast<uint64_t>(p[3]);
  k.sample0 = p[4];
  k.position0 = p[5];
  return k;
}

uint64_t DropoutKey::stream(int64_t b, int64_t head) const {
  uint64_t h = mix(seed ^ 0x6C6F6E676E6574ULL);  // "longnet": dropout's own stream of the seed
  for (uint64_t part : {step, layer, static_cast<uint64_t>(sample0 + b), static_cast<uint64_t>(head)})
    h = mix(h ^ part);
  return h;
}

at::Tensor dropout_factors(const DropoutKey& key, uint64_t stream, const at::Tensor& q_pos, const at::Tensor& k_pos,
                           at::ScalarType dtype, const at::Device& device) {
  TORCH_CHECK(key.rate > 0 && key.rate < 1, "dropout rate must be in (0, 1)");
  if (!device.is_cpu()) return dropout_factors_by_tensor_ops(key, stream, q_pos, k_pos, dtype, device);
  return factors_on_cpu(key, stream, positions_on_cpu(key, q_pos), positions_on_cpu(key, k_pos), dtype).to(dtype);
}

at::Tensor dropout_factors_all(const DropoutKey& key, int64_t B, int64_t H, const at::Tensor& q_pos,
                               const at::Tensor& k_pos, at::ScalarType dtype, const at::Device& device) {
  TORCH_CHECK(key.rate > 0 && key.rate < 1, "dropout rate must be in (0, 1)");
  if (!device.is_cpu()) {
    std::vector<at::Tensor> units;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        units.push_back(dropout_factors_by_tensor_ops(key, key.stream(b, h), q_pos, k_pos, dtype, device));
    return at::stack(units).view({B, H, q_pos.size(0), k_pos.size(0)});
  }
  const auto q = positions_on_cpu(key, q_pos), k = positions_on_cpu(key, k_pos);
  std::vector<at::Tensor> units;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) units.push_back(factors_on_cpu(key, key.stream(b, h), q, k, dtype));
  return at::stack(units).view({B, H, static_cast<int64_t>(q.size()), static_cast<int64_t>(k.size())})
      .to(device, dtype);
}

}  // namespace longnet::attention
