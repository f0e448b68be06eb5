#include "tools/bench_util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <sstream>

#include "common/errors.h"
#include "common/process.h"

namespace longnet::tools {

nlohmann::json run_child(const std::string& command, int& rc) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  std::string out, last;
  char buf[4096];
  while (pipe && std::fgets(buf, sizeof(buf), pipe)) out += buf;
  const int status = pipe ? ::pclose(pipe) : -1;
  // The shell's convention: the exit status, or 128 + the signal that killed the child.
  rc = status == -1 ? -1 : exit_code(status);
  std::stringstream ss(out);
  for (std::string line; std::getline(ss, line);)
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last, nullptr, false);
}

const char* oom_hint(int rc) { return rc == 128 + SIGKILL ? ": out of memory?" : ""; }

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

double current_rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace longnet::tools
