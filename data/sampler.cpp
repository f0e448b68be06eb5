#include "data/sampler.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "common/hash.h"

namespace longnet::data {
namespace {

// A hash's top 53 bits as a number in [0, 1).
double unit(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

}  // namespace

WindowSampler::WindowSampler(const TokenShard& shard, int64_t seq_len, int64_t batch_size, uint64_t seed)
    : shard_(shard), seq_len_(seq_len), batch_size_(batch_size), seed_(seed) {
  if (shard.size() < seq_len + 1)
    throw DataError(shard.path() + ": holds " + std::to_string(shard.size()) + " tokens, fewer than data.seq_len + 1 = " +
                    std::to_string(seq_len + 1) + "; use a shorter data.seq_len or a larger corpus");
}

Batch WindowSampler::batch(int64_t step, int64_t micro, int64_t rank) const {
  const uint64_t span = static_cast<uint64_t>(shard_.size() - seq_len_);  // valid starts: [0, span)
  std::vector<torch::Tensor> rows;
  std::vector<std::pair<int64_t, torch::Tensor>> unscored;  // passkey rows: which tokens are random
  rows.reserve(batch_size_);
  uint64_t key = mix64(seed_ ^ mix64(static_cast<uint64_t>(step) ^ mix64(static_cast<uint64_t>(micro) ^ mix64(static_cast<uint64_t>(rank)))));
  for (int64_t b = 0; b < batch_size_; ++b) {
    key = mix64(key + static_cast<uint64_t>(b));
    if (passkeys_) {
      // More draws from the row's key: passkey or not, then the key of its documents.
      const uint64_t k1 = mix64(key ^ 0x70617373ULL), k2 = mix64(k1), k3 = mix64(k2);
      if (unit(k1) < passkey_fraction_) {
        auto [tokens, random] = passkey_window(k2 ^ k3);
        rows.push_back(tokens);
        unscored.emplace_back(b, random);
        continue;
      }
    }
    rows.push_back(shard_.slice(static_cast<int64_t>(key % span), seq_len_ + 1));
  }
  auto w = torch::stack(rows);  // [B, T + 1]
  auto targets = w.narrow(1, 1, seq_len_);
  if (!unscored.empty()) targets = targets.clone();  // a view of w, which the tokens share
  for (const auto& [row, random] : unscored) targets[row].masked_fill_(random.narrow(0, 1, seq_len_), kNoTarget);
  return {w.narrow(1, 0, seq_len_), targets};
}

std::pair<torch::Tensor, torch::Tensor> WindowSampler::passkey_window(uint64_t key) const {
  // The first document's length is log-uniform in [min, window], min the shortest document or
  // data.passkey_reach_length: every scale of reach above min is trained equally often. The
  // rest of the window holds documents of log-uniform lengths in [shortest, short_length], each
  // begun by the end-of-document token as the corpus separates its documents (and as
  // model.document_mask finds them); the last takes what is left when less than another
  // document would remain.
  const int64_t shortest = passkeys_->min_length();
  const int separator = passkeys_->separator();
  std::vector<int64_t> tokens;
  auto random = torch::zeros({seq_len_ + 1}, torch::kBool);
  int64_t remaining = seq_len_ + 1;
  int64_t longest = remaining;
  int64_t lead = 0;  // the separator's token before every document but the first
  while (remaining > 0) {
    key = mix64(key + 1);
    const int64_t least = lead ? shortest + lead : std::max(shortest, passkey_reach_length_);
    const int64_t upper = std::max(least, std::min(longest, remaining));
    int64_t length = static_cast<int64_t>(
        std::exp(std::log(static_cast<double>(least)) +
                 unit(key) * (std::log(static_cast<double>(upper)) - std::log(static_cast<double>(least)))));
    length = std::clamp(length, least, remaining);
    if (remaining - length < shortest + 1) length = remaining;
    const uint64_t depth_key = mix64(key ^ 0x64657074ULL), pass_key = mix64(depth_key);
    if (lead) tokens.push_back(separator);
    // The first document's depth is u^2: its key in the first quarter of the filler half the
    // time, so that keys far from their question, which only this document can hold, are
    // drawn more often than a uniform depth draws them.
    const double depth = lead ? unit(depth_key) : unit(depth_key) * unit(depth_key);
    const auto doc = passkeys_->build(length - lead, depth, passkey_of_hash(pass_key));
    const int64_t key_size = length - lead - doc.answer_begin;  // the key's tokens are the answer's
    random.narrow(0, static_cast<int64_t>(tokens.size()) + doc.key_at, key_size).fill_(true);
    tokens.insert(tokens.end(), doc.tokens.begin(), doc.tokens.end());
    remaining -= length;
    longest = passkey_short_length_;
    lead = 1;
  }
  return {torch::tensor(tokens, torch::kLong), random};
}

void WindowSampler::mix_passkeys(const PasskeyBuilder* builder, double fraction, int64_t short_length,
                                 int64_t reach_length) {
  if (builder && fraction > 0 && seq_len_ + 1 < builder->min_length())
    throw ConfigError("data.passkey_fraction: a passkey document needs at least " + std::to_string(builder->min_length() - 1) +
                      " tokens of this tokenizer; data.seq_len is " + std::to_string(seq_len_));
  passkeys_ = fraction > 0 ? builder : nullptr;
  passkey_fraction_ = fraction;
  passkey_short_length_ = short_length;
  passkey_reach_length_ = reach_length;
}

SequentialWindows::SequentialWindows(const TokenShard& shard, int64_t seq_len) : shard_(shard), seq_len_(seq_len) {
  if (shard.size() < 2) throw DataError(shard.path() + ": holds fewer than 2 tokens; nothing to evaluate");
}

int64_t SequentialWindows::count() const { return (shard_.size() - 1 + seq_len_ - 1) / seq_len_; }

Batch SequentialWindows::windows(int64_t first, int64_t n) const {
  std::vector<torch::Tensor> rows;
  for (int64_t i = first; i < first + n; ++i) {
    const int64_t start = i * seq_len_;
    const int64_t len = std::min(seq_len_, shard_.size() - 1 - start);
    rows.push_back(shard_.slice(start, len + 1));
  }
  auto w = torch::stack(rows);
  const int64_t t = w.size(1) - 1;
  return {w.narrow(1, 0, t), w.narrow(1, 1, t)};
}

}  // namespace longnet::data
