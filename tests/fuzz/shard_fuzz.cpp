// Token shards and their cache entry. The last byte (FuzzedDataProvider takes integers from the
// end) chooses:
//   bit 0: write the input's checksum into its header, so that mutations reach past the check;
//   bit 1: the input is a cached entry (meta.json, then train.bin) that prepare_shards opens or
//          rebuilds; else a shard that TokenShard opens.
// A shard that opens must hand out every token; prepare_shards must return whole shards and
// throw nothing, since a cache it cannot use is rebuilt.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <string>

#include "common/hash.h"
#include "data/shards.h"
#include "tests/fuzz/fuzz.h"

using namespace longnet;

namespace {

struct Cache {
  data::DataOptions options;
  data::Corpus corpus;
  std::unique_ptr<data::Tokenizer> tokenizer;
  std::filesystem::path dir;
  int64_t train_tokens = 0;
};

Cache& cache() {
  static Cache c = [] {
    Cache c;
    const auto root = fuzz::scratch();
    fuzz::put(root / "corpus.txt", "the quick brown fox jumps over the lazy dog\nsome more text, for a tokenizer\n");
    c.options.path = (root / "corpus.txt").string();
    c.options.cache_dir = (root / "cache").string();
    c.corpus = data::load_corpus(c.options);
    data::TokenizerOptions t;
    t.path = (root / "char.model").string();
    t.type = "char";
    t.vocab_size = 64;
    data::train_tokenizer(t, c.corpus);
    c.tokenizer = std::make_unique<data::Tokenizer>(t.path);
    const auto shards = data::prepare_shards(c.options, c.corpus, *c.tokenizer);
    c.dir = shards.dir;
    c.train_tokens = shards.train.size();
    return c;
  }();
  return c;
}

// Sets the header's checksum (bytes 32..39) to that of the tokens after the 64-byte header.
void fix_checksum(std::string& shard) {
  if (shard.size() < 64) return;
  const uint64_t sum = data::checksum64(shard.data() + 64, shard.size() - 64);
  std::memcpy(shard.data() + 32, &sum, 8);
}

void read_all(const data::TokenShard& shard) {
  const auto tokens = shard.slice(0, shard.size());
  if (tokens.numel() != shard.size()) fuzz::fail("a shard handed out fewer tokens than it holds");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet();
  cache();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t mode = in.ConsumeIntegral<uint8_t>();
  auto& c = cache();
  if (mode & 2) {
    // A cache entry is never refused: whatever is wrong with it, it is rebuilt.
    const std::string meta = in.ConsumeRandomLengthString(4096);
    std::string train = in.ConsumeRemainingBytesAsString();
    if (mode & 1) fix_checksum(train);
    fuzz::put(c.dir / "meta.json", meta);
    fuzz::put(c.dir / "train.bin", train);
    const auto shards = data::prepare_shards(c.options, c.corpus, *c.tokenizer);
    read_all(shards.train);
    read_all(shards.val);
    return 0;
  }
  try {
    {
      std::string shard = in.ConsumeRemainingBytesAsString();
      if (mode & 1) fix_checksum(shard);
      const auto path = fuzz::scratch() / "input.bin";
      fuzz::put(path, shard);
      read_all(data::TokenShard(path.string()));
    }
  } catch (const Error&) {
  }
  return 0;
}
