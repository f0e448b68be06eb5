#pragma once
// Token shards: a split's tokens in one memory-mapped file (uint16 when the vocabulary fits,
// else uint32), cached under data.cache_dir by a hash of corpus and tokenizer.
#include <torch/types.h>

#include <cstdint>
#include <string>

#include "data/corpus.h"
#include "data/tokenizer.h"

namespace longnet::data {

class TokenShard {
 public:
  TokenShard() = default;
  // Maps a shard file; throws DataError naming it when it is missing, truncated or foreign.
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  int64_t size() const { return count_; }
  int64_t bytes_per_token() const { return width_; }
  // tokens [start, start + len) -> int64 tensor [len]
  torch::Tensor slice(int64_t start, int64_t len) const;
  const std::string& path() const { return path_; }

  // Writes tokens atomically in the shard format; width 2 when max_id < 65536.
  static void write(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const unsigned char* data_ = nullptr;
  int64_t count_ = 0, width_ = 0;
};

struct Shards {
  TokenShard train, val;
  int64_t train_bytes = 0, val_bytes = 0;  // UTF-8 bytes of the text behind each split
  std::string dir;
};

// Returns the cached shards for (corpus, tokenizer), tokenizing the corpus first when the
// cache has none. Documents are joined with the tokenizer's </s>.
Shards prepare_shards(const DataOptions& options, const Corpus& corpus, const Tokenizer& tokenizer);

}  // namespace longnet::data
