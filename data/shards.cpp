#include "data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/progress.h"

namespace longnet::data {
namespace {

constexpr char kMagic[8] = {'L', 'N', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 2;  // 2: the tokens' checksum in the header

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t width;  // bytes per token: 2 or 4
  uint64_t count;
  uint64_t vocab_size;
  uint64_t checksum;  // checksum64 of the token bytes after the header
  unsigned char reserved[24];
};
static_assert(sizeof(Header) == 64, "shard header is 64 bytes");

// Encodes documents on all cores; each document ends with </s>.
std::vector<int32_t> encode_documents(const std::vector<Document>& docs, const Tokenizer& tok) {
  const size_t n_threads = std::max<size_t>(1, std::min<size_t>(std::thread::hardware_concurrency(), docs.size()));
  std::vector<std::vector<int>> encoded(docs.size());
  Progress progress("tokenizing", static_cast<int64_t>(docs.size()), "documents");
  std::vector<std::thread> workers;
  for (size_t t = 0; t < n_threads; ++t)
    workers.emplace_back([&, t] {
      for (size_t i = t; i < docs.size(); i += n_threads) {
        encoded[i] = tok.encode(docs[i].text);
        progress.add();
      }
    });
  for (auto& w : workers) w.join();
  std::vector<int32_t> out;
  for (const auto& ids : encoded) {
    out.insert(out.end(), ids.begin(), ids.end());
    out.push_back(tok.eos_id());
  }
  return out;
}

}  // namespace

TokenShard::TokenShard(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(path + ": cannot open token shard (run `longnet prepare CONFIG` to rebuild it)");
  struct stat st {};
  ::fstat(fd, &st);
  map_len_ = static_cast<size_t>(st.st_size);
  if (map_len_ < sizeof(Header)) {
    ::close(fd);
    throw DataError(path + ": token shard is truncated (" + std::to_string(map_len_) + " bytes)");
  }
  map_ = ::mmap(nullptr, map_len_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw DataError(path + ": cannot map token shard");
  }
  // A constructor that throws runs no destructor: unmap before refusing.
  auto refuse = [&](const std::string& why) {
    ::munmap(map_, map_len_);
    map_ = nullptr;
    throw DataError(path + ": " + why);
  };
  Header h;
  std::memcpy(&h, map_, sizeof(h));
  if (std::memcmp(h.magic, kMagic, 8) != 0 || h.version != kVersion || (h.width != 2 && h.width != 4))
    refuse("not a longnet token shard of version " + std::to_string(kVersion));
  // count is read from the file: compare without overflowing (a header may claim 2^63 tokens).
  if (h.count > (map_len_ - sizeof(Header)) / h.width || sizeof(Header) + h.count * h.width != map_len_)
    refuse("token shard is truncated or padded (header says " + std::to_string(h.count) + " tokens of " +
           std::to_string(h.width) + " bytes, the file holds " + std::to_string(map_len_ - sizeof(Header)) +
           " bytes after its header)");
  data_ = static_cast<const unsigned char*>(map_) + sizeof(Header);
  if (checksum64(data_, map_len_ - sizeof(Header)) != h.checksum)
    refuse("token shard is corrupt (its checksum does not match: changed after it was written)");
  count_ = static_cast<int64_t>(h.count);
  width_ = h.width;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_len_);
}

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_len_);
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_len_ = std::exchange(o.map_len_, 0);
    data_ = std::exchange(o.data_, nullptr);
    count_ = std::exchange(o.count_, 0);
    width_ = std::exchange(o.width_, 0);
  }
  return *this;
}

torch::Tensor TokenShard::slice(int64_t start, int64_t len) const {
  TORCH_CHECK(start >= 0 && len >= 0 && start + len <= count_, "slice [", start, ", ", start + len,
              ") outside shard of ", count_, " tokens");
  auto out = torch::empty({len}, torch::kLong);
  auto* dst = out.data_ptr<int64_t>();
  if (width_ == 2) {
    const auto* src = reinterpret_cast<const uint16_t*>(data_) + start;
    for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
  } else {
    const auto* src = reinterpret_cast<const uint32_t*>(data_) + start;
    for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
  }
  return out;
}

void TokenShard::write(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.width = vocab_size <= 65536 ? 2 : 4;
  h.count = tokens.size();
  h.vocab_size = static_cast<uint64_t>(vocab_size);
  std::string bytes(sizeof(Header) + tokens.size() * h.width, '\0');
  std::memcpy(bytes.data(), &h, sizeof(h));
  char* dst = bytes.data() + sizeof(Header);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (h.width == 2) {
      const uint16_t t = static_cast<uint16_t>(tokens[i]);
      std::memcpy(dst + 2 * i, &t, 2);
    } else {
      const uint32_t t = static_cast<uint32_t>(tokens[i]);
      std::memcpy(dst + 4 * i, &t, 4);
    }
  }
  h.checksum = checksum64(dst, tokens.size() * h.width);
  std::memcpy(bytes.data(), &h, sizeof(h));
  write_file_atomic(path, bytes);
}

Shards prepare_shards(const DataOptions& options, const Corpus& corpus, const Tokenizer& tokenizer) {
  const std::string key = ContentHash().add(corpus.fingerprint).add(tokenizer.serialized()).add(kVersion).hex();
  const fs::path dir = fs::path(options.cache_dir) / key;
  const fs::path meta_path = dir / "meta.json";
  auto build = [&] {
    spdlog::info("tokenizing {} train and {} validation documents into {}", corpus.train.size(), corpus.val.size(), dir.string());
    std::error_code ec;
    fs::remove(meta_path, ec);  // the entry is incomplete until meta.json is written again
    fs::create_directories(dir, ec);
    if (ec) throw DataError("data.cache_dir: cannot create '" + dir.string() + "': " + ec.message());
    const auto train = encode_documents(corpus.train, tokenizer);
    const auto val = encode_documents(corpus.val, tokenizer);
    TokenShard::write((dir / "train.bin").string(), train, tokenizer.vocab_size());
    TokenShard::write((dir / "val.bin").string(), val, tokenizer.vocab_size());
    // meta.json is written last: its presence marks a complete cache entry.
    nlohmann::json meta = {{"train_tokens", train.size()}, {"val_tokens", val.size()},
                           {"train_bytes", corpus.train_bytes()}, {"val_bytes", corpus.val_bytes()},
                           {"train_documents", corpus.train.size()}, {"val_documents", corpus.val.size()},
                           {"vocab_size", tokenizer.vocab_size()}, {"tokenizer", tokenizer.path()}};
    write_file_atomic(meta_path, meta.dump(2) + "\n");
  };
  // A complete entry whose files are unreadable, truncated or changed since (each shard carries
  // its size and checksum) is a cache: it is rebuilt, once, saying why.
  auto open = [&] {
    const auto meta = nlohmann::json::parse(read_file(meta_path), nullptr, /*allow_exceptions=*/false);
    if (!meta.is_object()) throw DataError(meta_path.string() + ": unreadable");
    Shards shards;
    shards.dir = dir.string();
    shards.train = TokenShard((dir / "train.bin").string());
    shards.val = TokenShard((dir / "val.bin").string());
    // meta.json must agree with the shards it describes, in every field the data path reads.
    const auto count = [&](const char* key) {
      const auto it = meta.find(key);
      if (it == meta.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
        throw DataError(meta_path.string() + ": '" + key + "' is missing or not a count");
      return it->get<int64_t>();
    };
    if (count("train_tokens") != shards.train.size() || count("val_tokens") != shards.val.size())
      throw DataError(meta_path.string() + ": its token counts differ from the shards'");
    shards.train_bytes = count("train_bytes");
    shards.val_bytes = count("val_bytes");
    return shards;
  };
  if (!fs::exists(meta_path)) {
    build();
    return open();
  }
  try {
    return open();
  } catch (const DataError& e) {
    spdlog::warn("{}; rebuilding the cached token shards", e.what());
  }
  build();
  return open();
}

}  // namespace longnet::data
