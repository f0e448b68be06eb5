#include "data/corpus.h"

#include <algorithm>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/hash.h"

namespace longnet::data {
namespace {

int64_t total_bytes(const std::vector<Document>& docs) {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.text.size());
  return n;
}

}  // namespace

int64_t Corpus::train_bytes() const { return total_bytes(train); }
int64_t Corpus::val_bytes() const { return total_bytes(val); }

Corpus load_corpus(const DataOptions& options) {
  const fs::path root(options.path);
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw DataError("data.path: '" + options.path + "' does not exist (expected a text file or a folder of .txt files)");
  Corpus corpus;
  ContentHash h;
  h.add(static_cast<uint64_t>(options.val_fraction * 1e9));
  if (fs::is_regular_file(root)) {
    std::string text = read_file(root);
    if (text.empty()) throw DataError("data.path: '" + options.path + "' is empty");
    h.add(text);
    // Cut at a byte position, like nanoGPT; the char tokenizer makes this a char split too.
    const size_t cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - options.val_fraction));
    corpus.val.push_back({root.filename().string(), text.substr(cut)});
    text.resize(cut);
    corpus.train.push_back({root.filename().string(), std::move(text)});
  } else {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && it->path().extension() == ".txt") files.push_back(it->path());
    if (ec) throw DataError("data.path: cannot list '" + options.path + "': " + ec.message());
    if (files.empty()) throw DataError("data.path: '" + options.path + "' holds no .txt file");
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      Document doc{fs::relative(f, root).string(), read_file(f)};
      if (doc.text.empty()) continue;
      h.add(doc.name).add(doc.text);
      const double u = static_cast<double>(mix64(ContentHash().add(doc.name).value()) >> 11) * 0x1.0p-53;
      (u < options.val_fraction ? corpus.val : corpus.train).push_back(std::move(doc));
    }
    if (corpus.train.empty() || (options.val_fraction > 0 && corpus.val.empty()))
      throw DataError("data.path: '" + options.path + "' has too few documents to hold out " +
                      std::to_string(options.val_fraction) + " of them for validation (data.val_fraction)");
  }
  corpus.fingerprint = h.hex();
  return corpus;
}

}  // namespace longnet::data
