#include "common/process.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "common/errors.h"

extern char** environ;

namespace longnet {

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error("cannot read /proc/self/exe to find this program");
  return std::string(buf, static_cast<size_t>(n));
}

std::vector<std::string> rank_environment(int rank, int world, int port, const std::vector<std::string>& extra) {
  std::vector<std::string> env = {"RANK=" + std::to_string(rank),        "LOCAL_RANK=" + std::to_string(rank),
                                  "WORLD_SIZE=" + std::to_string(world), "LOCAL_WORLD_SIZE=" + std::to_string(world),
                                  "MASTER_ADDR=127.0.0.1",               "MASTER_PORT=" + std::to_string(port)};
  env.insert(env.end(), extra.begin(), extra.end());
  std::set<std::string> set;
  for (const auto& e : env) set.insert(e.substr(0, e.find('=')));
  for (char** e = environ; *e; ++e) {
    const std::string var = *e;
    if (!set.count(var.substr(0, var.find('=')))) env.push_back(var);
  }
  return env;
}

pid_t spawn(const std::string& exe, const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> a = args, e = env;
  std::vector<char*> argv, envp;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : e) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data());
  if (rc != 0) throw Error("cannot start " + exe + ": " + std::strerror(rc));
  return pid;
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::string describe_exit(int wait_status) {
  if (WIFSIGNALED(wait_status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(wait_status));
  return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

}  // namespace longnet
