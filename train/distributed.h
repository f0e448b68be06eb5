#pragma once
// The process group of a distributed run, from the torchrun environment (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT; `longnet launch` sets the same): rendezvous through a
// c10d TCPStore, then ProcessGroupNCCL when Torch has CUDA and the run is on GPUs, else
// ProcessGroupGloo. A single process (no RANK) gets no group.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <chrono>
#include <string>

namespace longnet::train {

struct DistributedEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool active() const { return world_size > 1; }
};

// A TCP port on the loopback that nobody listens on right now (for MASTER_PORT of local runs).
int free_local_port();

// Reads the variables; a malformed or inconsistent one is a ConfigError naming it.
DistributedEnv distributed_env();

// The group of all ranks; collectives and point-to-point calls fail (throw) after `timeout`
// instead of hanging on a dead peer.
c10::intrusive_ptr<c10d::ProcessGroup> init_process_group(const DistributedEnv& env, std::chrono::milliseconds timeout);

}  // namespace longnet::train
