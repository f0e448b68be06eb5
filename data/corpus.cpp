#include "data/corpus.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/hash.h"

namespace longnet::data {
namespace {

enum class Format { kText, kJsonl };

int64_t total_bytes(const std::vector<Document>& docs) {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.text.size());
  return n;
}

// How a file is read: data.format when it names one, else its extension. In a folder, files of
// other extensions are not read (nullopt).
std::optional<Format> format_of(const fs::path& file, const std::string& format, bool in_folder) {
  const auto ext = file.extension();
  const bool jsonl = ext == ".jsonl", txt = ext == ".txt";
  if (format == "text") return !in_folder || txt ? std::optional(Format::kText) : std::nullopt;
  if (format == "jsonl") return !in_folder || jsonl ? std::optional(Format::kJsonl) : std::nullopt;
  if (jsonl) return Format::kJsonl;  // auto
  return !in_folder || txt ? std::optional(Format::kText) : std::nullopt;
}

// The documents of a JSONL file, one per line: each line a JSON object whose data.text_key is a
// string; blank lines are passed over. A bad line is an error naming the file and line, or with
// data.skip_bad_lines is counted and logged. Documents are named "<name>:<line>".
void read_jsonl(const fs::path& file, const std::string& name, const DataOptions& options, std::vector<Document>& out) {
  const std::string bytes = read_file(file);
  int64_t skipped = 0, line_no = 0, first_bad = 0;
  std::string first_why;
  for (size_t pos = 0; pos < bytes.size();) {
    size_t end = bytes.find('\n', pos);
    if (end == std::string::npos) end = bytes.size();
    std::string_view line(bytes.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string why;
    if (j.is_discarded()) {
      why = "not valid JSON";
    } else if (!j.is_object()) {
      why = "not a JSON object";
    } else if (const auto it = j.find(options.text_key); it == j.end()) {
      why = "no key '" + options.text_key + "' (data.text_key)";
    } else if (!it->is_string()) {
      why = "'" + options.text_key + "' is not a string";
    } else {
      if (!it->get_ref<const std::string&>().empty())
        out.push_back({name + ":" + std::to_string(line_no), it->get<std::string>()});
      continue;
    }
    if (!options.skip_bad_lines)
      throw DataError(file.string() + ":" + std::to_string(line_no) + ": " + why + " (expected one JSON object per line with a string '" +
                      options.text_key + "'; data.skip_bad_lines: true skips such lines)");
    if (skipped++ == 0) first_bad = line_no, first_why = why;
  }
  if (skipped > 0)
    spdlog::warn("{}: skipped {} bad line{} of {} (data.skip_bad_lines); the first, line {}: {}", file.string(), skipped,
                 skipped == 1 ? "" : "s", line_no, first_bad, first_why);
}

}  // namespace

int64_t Corpus::train_bytes() const { return total_bytes(train); }
int64_t Corpus::val_bytes() const { return total_bytes(val); }

Corpus load_corpus(const DataOptions& options) {
  const fs::path root(options.path);
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw DataError("data.path: '" + options.path + "' does not exist (expected a text or JSONL file, or a folder of them)");
  Corpus corpus;
  ContentHash h;
  h.add(static_cast<uint64_t>(options.val_fraction * 1e9));
  const bool one_file = fs::is_regular_file(root, ec);
  if (one_file && format_of(root, options.format, false) == Format::kText) {
    std::string text = read_file(root);
    if (text.empty()) throw DataError("data.path: '" + options.path + "' is empty");
    h.add(text);
    // Cut at a byte position, like nanoGPT; the char tokenizer makes this a char split too.
    const size_t cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - options.val_fraction));
    corpus.val.push_back({root.filename().string(), text.substr(cut)});
    text.resize(cut);
    corpus.train.push_back({root.filename().string(), std::move(text)});
    corpus.fingerprint = h.hex();
    return corpus;
  }
  // Whole documents: the files of a folder (text files one each, JSONL files one per line), or
  // the lines of one JSONL file.
  std::vector<std::pair<fs::path, Format>> files;
  if (one_file) {
    files.emplace_back(root, Format::kJsonl);
  } else {
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (std::error_code file_ec; it->is_regular_file(file_ec))
        if (const auto f = format_of(it->path(), options.format, true)) files.emplace_back(it->path(), *f);
    if (ec) throw DataError("data.path: cannot list '" + options.path + "': " + ec.message());
    if (files.empty())
      throw DataError("data.path: '" + options.path + "' holds no " +
                      (options.format == "text" ? std::string(".txt") : options.format == "jsonl" ? ".jsonl" : ".txt or .jsonl") +
                      " file (data.format: " + options.format + ")");
    std::sort(files.begin(), files.end());
  }
  std::vector<Document> docs;
  for (const auto& [file, format] : files) {
    const std::string name = one_file ? root.filename().string() : file.lexically_relative(root).string();
    if (format == Format::kJsonl) {
      read_jsonl(file, name, options, docs);
    } else if (std::string text = read_file(file); !text.empty()) {
      docs.push_back({name, std::move(text)});
    }
  }
  for (auto& doc : docs) {
    h.add(doc.name).add(doc.text);
    // A document is validation by a hash of its name, so adding documents moves no other.
    const double u = static_cast<double>(mix64(ContentHash().add(doc.name).value()) >> 11) * 0x1.0p-53;
    (u < options.val_fraction ? corpus.val : corpus.train).push_back(std::move(doc));
  }
  const size_t n = corpus.train.size() + corpus.val.size();
  if (n == 0) throw DataError("data.path: '" + options.path + "' holds no document that is not empty");
  if (corpus.train.empty() || corpus.val.empty())
    throw DataError("data.path: '" + options.path + "' holds " + std::to_string(n) + " document" + (n == 1 ? "" : "s") +
                    ", and data.val_fraction " + std::to_string(options.val_fraction) + " put " +
                    (corpus.val.empty() ? "none of them in validation" : "all of them in validation") +
                    ": add documents (a few dozen hold out a fraction reliably), or change data.val_fraction");
  corpus.fingerprint = h.hex();
  return corpus;
}

}  // namespace longnet::data
