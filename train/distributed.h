#pragma once
// The process group of a distributed run, from the torchrun environment (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT; `longnet launch` sets the same): rendezvous through a
// c10d TCPStore, then ProcessGroupNCCL when Torch has CUDA and the run is on GPUs, else
// ProcessGroupGloo. A single process (no RANK) gets no group.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace longnet::train {

struct DistributedEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  int local_world_size = 1;  // ranks on this machine (LOCAL_WORLD_SIZE, as torchrun sets it)
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

// Where a rank is in a training step, in the order a step passes through them.
enum class Phase { kForwardBackward, kGradientAllReduce, kEvaluation, kCheckpointBarrier };
const char* name_of(Phase phase);

// Every rank bumps a counter of its own in the rendezvous store once a second, from a thread
// of its own, and publishes with it where the training thread last said it was (step and
// phase). After a collective failed, the ranks whose counter stands still are the dead ones (a
// counter, not a clock: the hosts' clocks need not agree); when every rank still beats, the
// ones behind the others (an earlier step or phase) are where it hangs.
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size);
  ~Heartbeat();
  // Called by the training thread; cheap (no store access: the beat thread publishes it).
  void at(int64_t step, Phase phase);
  // "rank 1 and rank 3 stopped (no heartbeat for 3 s)"; or, every rank beating, "rank 1 is
  // behind: at step 6 in forward and backward, while rank 0 is at step 6 in the gradient
  // all-reduce"; or that the store itself (on rank 0) is gone. Takes about 3 seconds.
  std::string diagnose() const;

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  int rank_, world_size_;
  std::atomic<int64_t> progress_{-1};  // step * 4 + phase; -1: not in a step yet
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The groups of a run with sequence parallelism P (distributed.sequence_parallel): the world
// of W ranks is W / P data-parallel replicas, replica d being the P consecutive ranks
// [d P, (d + 1) P) that share every sequence. Default-constructed: a single process.
struct ProcessGroups {
  c10::intrusive_ptr<c10d::ProcessGroup> world;     // all ranks: gradients, barriers
  c10::intrusive_ptr<c10d::ProcessGroup> sequence;  // this rank's replica; null when P = 1
  std::shared_ptr<Heartbeat> heartbeat;              // names the dead after a failure
  int rank() const { return world ? world->getRank() : 0; }
  int size() const { return world ? world->getSize() : 1; }
  int sequence_size() const { return sequence ? sequence->getSize() : 1; }
  int replica() const { return rank() / sequence_size(); }          // data-parallel index
  int replicas() const { return size() / sequence_size(); }
};

// Gloo for a CPU run; NCCL for a CUDA run (built only when Torch has CUDA: CMake option
// LONGNET_WITH_NCCL, on by itself then). Throws ConfigError naming distributed.sequence_parallel
// when WORLD_SIZE is not a multiple of it, and naming train.device for a CUDA run without NCCL.
ProcessGroups init_process_groups(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                  int64_t sequence_parallel, bool cuda = false);

}  // namespace longnet::train
