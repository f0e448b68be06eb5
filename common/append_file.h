#pragma once
// Appending to a log that stays open (metrics.jsonl, TensorBoard event files): each append is
// flushed, and one that cannot be written completely throws DataError naming the file and errno.
#include <cstdio>
#include <string>
#include <string_view>

namespace longnet::data {

void append_flushed(std::FILE* file, const std::string& path, std::string_view bytes);

}  // namespace longnet::data
