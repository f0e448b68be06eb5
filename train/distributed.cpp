#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LONGNET_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "common/errors.h"

namespace longnet::train {
namespace {

// The integer value of an environment variable, or `fallback` when unset.
int env_int(const char* name, int fallback, int min) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < min || v > (1 << 20))
    throw ConfigError(std::string("environment variable ") + name + ": expected an integer >= " + std::to_string(min) +
                      ", got '" + text + "'");
  return static_cast<int>(v);
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error("cannot find a free TCP port on the loopback");
  return ntohs(addr.sin_port);
}

DistributedEnv distributed_env() {
  DistributedEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  e.rank = env_int("RANK", 0, 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, 1);
  e.master_port = env_int("MASTER_PORT", 29500, 1);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) e.master_addr = addr;
  if (e.rank >= e.world_size)
    throw ConfigError("environment variable RANK: " + std::to_string(e.rank) + " is not below WORLD_SIZE " +
                      std::to_string(e.world_size));
  if (e.master_port > 65535) throw ConfigError("environment variable MASTER_PORT: expected a port number below 65536");
  return e;
}

namespace {

c10::intrusive_ptr<c10d::Store> rendezvous(const DistributedEnv& env, std::chrono::milliseconds timeout) {
  // A peer that died leaves its sockets closed, and a write to one raises SIGPIPE, which would
  // kill this rank without a word (exit 141). Ignored, as Python does, the write fails with
  // EPIPE and the collective throws an error that names the peer.
  std::signal(SIGPIPE, SIG_IGN);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<std::size_t>(env.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": rendezvous at " + env.master_addr + ":" +
                std::to_string(env.master_port) + " failed: " + e.what());
  }
}

// A c10d ProcessGroup dispatches each collective to the Backend registered for the tensors'
// device type: one backend, registered for `device` and as the default.
c10::intrusive_ptr<c10d::ProcessGroup> as_process_group(c10::intrusive_ptr<c10d::Backend> backend,
                                                        c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                        c10::DeviceType device, const char* name) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(std::move(store), rank, size);
  const auto type = c10d::ProcessGroup::strToBackendType(name);
  group->setDefaultBackend(type);
  group->setBackend(device, type, backend);
  return group;
}

c10::intrusive_ptr<c10d::ProcessGroup> nccl_group(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                  std::chrono::milliseconds timeout) {
#ifdef LONGNET_WITH_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
  return as_process_group(nccl, std::move(store), rank, size, c10::DeviceType::CUDA, "nccl");
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  throw ConfigError("train.device: cuda with several ranks needs NCCL, and this is the CPU build (build the `cuda` "
                    "preset); use cpu (Gloo)");
#endif
}

c10::intrusive_ptr<c10d::ProcessGroup> gloo_group(const DistributedEnv& env, c10::intrusive_ptr<c10d::Store> store,
                                                  int rank, int size, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // Bind where the peers can reach us: a named interface (GLOO_SOCKET_IFNAME, as PyTorch), the
  // loopback for a single-machine run, else this host's address.
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost") {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
  return as_process_group(gloo, std::move(store), rank, size, c10::DeviceType::CPU, "gloo");
}

}  // namespace

c10::intrusive_ptr<c10d::ProcessGroup> init_process_group(const DistributedEnv& env, std::chrono::milliseconds timeout) {
  return gloo_group(env, rendezvous(env, timeout), env.rank, env.world_size, timeout);
}

const char* name_of(Phase phase) {
  switch (phase) {
    case Phase::kForwardBackward: return "forward and backward";
    case Phase::kGradientAllReduce: return "the gradient all-reduce";
    case Phase::kEvaluation: return "evaluation";
    case Phase::kCheckpointBarrier: return "the checkpoint barrier";
  }
  return "?";
}

namespace {

constexpr int64_t kPhases = 4;

std::string describe_progress(int64_t progress) {
  if (progress < 0) return "before the first step";
  return "at step " + std::to_string(progress / kPhases + 1) + " in " + name_of(static_cast<Phase>(progress % kPhases));
}

}  // namespace

Heartbeat::Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size)
    : store_(std::move(store)), rank_(rank), world_size_(world_size) {
  thread_ = std::thread([this] {
    const std::string beat = "heartbeat/" + std::to_string(rank_), where = "progress/" + std::to_string(rank_);
    while (!stop_) {
      try {
        const std::string p = std::to_string(progress_.load());
        store_->set(where, std::vector<uint8_t>(p.begin(), p.end()));
        store_->add(beat, 1);
      } catch (const std::exception&) {
        return;  // the store is gone (rank 0 exited): nothing left to tell
      }
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

Heartbeat::~Heartbeat() {
  stop_ = true;
  thread_.join();
}

void Heartbeat::at(int64_t step, Phase phase) { progress_ = step * kPhases + static_cast<int64_t>(phase); }

std::string Heartbeat::diagnose() const {
  auto read = [&] {
    std::vector<int64_t> beats;
    for (int r = 0; r < world_size_; ++r) beats.push_back(store_->add("heartbeat/" + std::to_string(r), 0));
    return beats;
  };
  try {
    const auto before = read();
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    const auto after = read();
    std::string dead;
    for (int r = 0; r < world_size_; ++r)
      if (r != rank_ && after[r] == before[r]) dead += (dead.empty() ? "rank " : " and rank ") + std::to_string(r);
    if (!dead.empty()) return dead + " stopped (no heartbeat for 3 s)";
    // Every rank beats: the ones furthest behind are where the run hangs.
    std::vector<int64_t> progress;
    for (int r = 0; r < world_size_; ++r) {
      if (r == rank_) {
        progress.push_back(progress_.load());
        continue;
      }
      const auto bytes = store_->get("progress/" + std::to_string(r));
      progress.push_back(std::stoll(std::string(bytes.begin(), bytes.end())));
    }
    const int64_t least = *std::min_element(progress.begin(), progress.end());
    std::string behind, ahead;
    for (int r = 0; r < world_size_; ++r)
      if (progress[r] == least) behind += (behind.empty() ? "rank " : " and rank ") + std::to_string(r);
      else if (ahead.empty()) ahead = "rank " + std::to_string(r) + " is " + describe_progress(progress[r]);
    if (ahead.empty())
      return "every rank is alive and " + describe_progress(least) + ": one is too slow for distributed.timeout_s";
    return "every rank is alive; " + behind + (behind.find(" and ") == std::string::npos ? " is" : " are") +
           " behind: " + describe_progress(least) + ", while " + ahead;
  } catch (const std::exception&) {
    return "rank 0 stopped (the rendezvous store it hosts is gone)";
  }
}

ProcessGroups init_process_groups(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                  int64_t sequence_parallel, bool cuda) {
  if (sequence_parallel < 1 || env.world_size % sequence_parallel != 0)
    throw ConfigError("distributed.sequence_parallel: " + std::to_string(sequence_parallel) +
                      " does not divide the " + std::to_string(env.world_size) +
                      " ranks of this run (WORLD_SIZE): expected a divisor of it");
  auto store = rendezvous(env, timeout);
  auto make = [&](c10::intrusive_ptr<c10d::Store> s, int rank, int size) {
    return cuda ? nccl_group(std::move(s), rank, size, timeout) : gloo_group(env, std::move(s), rank, size, timeout);
  };
  ProcessGroups groups;
  groups.world = make(store, env.rank, env.world_size);
  groups.heartbeat = std::make_shared<Heartbeat>(store, env.rank, env.world_size);
  if (sequence_parallel > 1) {
    const int P = static_cast<int>(sequence_parallel), replica = env.rank / P;
    groups.sequence = make(c10::make_intrusive<c10d::PrefixStore>("sequence/" + std::to_string(replica), store),
                           env.rank % P, P);
  }
  return groups;
}

}  // namespace longnet::train
