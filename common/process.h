#pragma once
// Child processes of our own binaries, for `longnet launch`, the benchmarks (each measurement
// in a fresh process) and the multi-process tests: one way to find the running executable, to
// build a rank's torchrun environment, to start a child and to read how it ended.
#include <sys/types.h>

#include <string>
#include <vector>

namespace longnet {

// The path of the running executable (/proc/self/exe); throws Error when it cannot be read.
std::string self_exe();

// The environment of rank `rank` of `world` local processes meeting at 127.0.0.1:port, as
// torchrun sets it (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
// then `extra` (NAME=value), then this process's environment without the variables set above.
std::vector<std::string> rank_environment(int rank, int world, int port, const std::vector<std::string>& extra = {});

// Starts `exe` with argv `args` (args[0]: the program's name) and environment `env`; returns its
// pid. Throws Error naming `exe` when it cannot be started.
pid_t spawn(const std::string& exe, const std::vector<std::string>& args, const std::vector<std::string>& env);

// The shell's reading of a wait status: the exit status, or 128 + the signal that killed it.
int exit_code(int wait_status);
// The same in words: "exited with status 1", "was killed by signal Killed".
std::string describe_exit(int wait_status);

}  // namespace longnet
