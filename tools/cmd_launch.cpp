// longnet launch --nproc N -- SUBCOMMAND ...: N local processes of this binary with the torchrun
// environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), for CPU runs and tests.
// If one exits with an error or a signal, the others are stopped and launch fails naming it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/process.h"
#include "tools/bench_util.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/distributed.h"

namespace longnet::tools {
int cmd_launch(int argc, char** argv) {
  Command cmd("launch", "Run N local processes of a longnet command with the torchrun environment.",
              R"(Starts N processes of `longnet COMMAND ARGS` on this machine with RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT set, as torchrun does;
they meet through a c10d TCPStore and talk over Gloo (NCCL with train.device: cuda). If a
process exits with an error or is killed, the others are stopped and launch exits 1 naming
the rank. Example: longnet launch --nproc 2 -- train configs/quickstart.yaml)");
  int nproc = 0, port = 0;
  std::vector<std::string> command;
  cmd.app().add_option("--nproc", nproc, "processes to start")->required()->check(kPositive);
  cmd.app().add_option("--port", port, "MASTER_PORT (default: a free port)")->check(CLI::Range(1, 65535));
  cmd.app().add_option("command", command, "after --: the longnet command and its arguments")->required();
  if (!cmd.parse(argc, argv)) return 0;
  if (port == 0) port = train::free_local_port();

  const std::string exe = self_exe();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> args = {exe};
    args.insert(args.end(), command.begin(), command.end());
    pid_t pid = 0;
    try {
      pid = spawn(exe, args, rank_environment(rank, nproc, port));
    } catch (const Error&) {
      for (pid_t p : pids) ::kill(p, SIGTERM);
      throw Error("longnet launch: cannot start rank " + std::to_string(rank));
    }
    pids.push_back(pid);
  }
  int failed_rank = -1, failed_status = 0, running = nproc;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    --running;
    int rank = 0;
    while (rank < nproc && pids[rank] != pid) ++rank;
    if (rank < nproc) pids[rank] = -1;
    const bool ok = exit_code(status) == 0;
    if (!ok && failed_rank < 0) {
      failed_rank = rank;
      failed_status = status;
      // Give the others a moment to report their own view of the failure, then stop them.
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGTERM);
    }
  }
  if (failed_rank >= 0) {
    std::fprintf(stderr, "error: longnet launch: rank %d %s; the other ranks were stopped\n", failed_rank,
                 describe_exit(failed_status).c_str());
    return 1;
  }
  return 0;
}

}  // namespace longnet::tools
