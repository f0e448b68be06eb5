// The YAML config through validation: parse_config with --set overrides. Lines starting with
// "#set " (YAML comments) are also passed as overrides. A config that is accepted must survive
// its own round trip: to_yaml, parsed again, writes the same YAML.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz.h"
#include "train/config.h"

using namespace longnet;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet();
  // Seeds name data.path: corpus.txt, which must exist for validation to go past it.
  std::filesystem::current_path(fuzz::scratch());
  fuzz::put("corpus.txt", "a small corpus\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#set ", 0) == 0) overrides.push_back(line.substr(5));
  try {
    const auto config = train::parse_config(text, "fuzz.yaml", overrides);
    const std::string yaml = train::to_yaml(config);
    const std::string again = train::to_yaml(train::parse_config(yaml, "fuzz.yaml (written back)"));
    if (again != yaml) fuzz::fail("to_yaml(parse_config(to_yaml(c))) differs from to_yaml(c):\n" + yaml + "\n---\n" + again);
  } catch (const Error&) {
  }
  return 0;
}
