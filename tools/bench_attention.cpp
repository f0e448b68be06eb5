// longnet bench attention: forward and forward+backward time, peak RSS and effective GFLOP/s
// of each kernel, each measurement in a fresh child process so that peak RSS is its own.
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "attention/block_sparse.h"
#include "attention/registry.h"
#include "common/errors.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchSetup {
  int64_t batch = 1, heads = 8, head_dim = 64, block = 256, key_block = 1024, repeat = 3;
  bool causal = true;
  double density = 0.1;
  int threads = 0;
};

// The kernel options benchmarked for `kind` at length T: the shared block sizes, and the kind's
// own settings from its registry entry.
attention::AttentionOptions bench_options(const std::string& kind, int64_t T, const BenchSetup& s) {
  attention::AttentionOptions o;
  o.kind = kind;
  o.block_size = s.block;
  o.key_block = s.key_block;
  const auto& entry = attention::kernel_entry(kind);
  return entry.bench ? entry.bench(o, T, s.density, s.causal) : o;
}

// Runs in the child: one kernel at one length.
nlohmann::json measure_one(const std::string& kind, int64_t T, const BenchSetup& s) {
  train::TrainOptions t;
  t.threads = s.threads;
  const int threads = train::configure_runtime(t);
  auto o = bench_options(kind, T, s);
  auto kernel = attention::make_kernel(o);
  auto q = torch::randn({s.batch, T, s.heads, s.head_dim}).requires_grad_();
  auto k = torch::randn_like(q).requires_grad_(), v = torch::randn_like(q).requires_grad_();
  auto gout = torch::randn_like(q);
  double fwd = 1e30, fwdbwd = 1e30;
  for (int64_t i = 0; i < s.repeat + 1; ++i) {  // the first round warms up
    auto t0 = Clock::now();
    {
      torch::NoGradGuard no_grad;
      kernel->forward(q, k, v, s.causal);
    }
    auto t1 = Clock::now();
    auto r = kernel->forward(q, k, v, s.causal);
    r.out.backward(gout);
    auto t2 = Clock::now();
    if (i > 0) {
      fwd = std::min(fwd, std::chrono::duration<double>(t1 - t0).count());
      fwdbwd = std::min(fwdbwd, std::chrono::duration<double>(t2 - t1).count());
    }
    q.mutable_grad() = torch::Tensor();
    k.mutable_grad() = torch::Tensor();
    v.mutable_grad() = torch::Tensor();
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double pairs = static_cast<double>(s.batch * s.heads) * kernel->attended_pairs(T, s.causal);
  nlohmann::json j = {{"kind", kind}, {"T", T}, {"heads", s.heads}, {"head_dim", s.head_dim}, {"batch", s.batch},
                      {"causal", s.causal}, {"fwd_ms", 1e3 * fwd}, {"fwd_bwd_ms", 1e3 * fwdbwd},
                      {"peak_rss_mb", ru.ru_maxrss / 1024.0}, {"attended_pairs", pairs},
                      {"gflops", 4.0 * s.head_dim * pairs / fwd / 1e9}, {"threads", threads}};
  j["density"] = attention::density(*kernel, T, s.causal);
  return j;
}

double gemm_gflops(int threads) {
  train::TrainOptions t;
  t.threads = threads;
  train::configure_runtime(t);
  auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  torch::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * 2048.0 * 2048.0 * 2048.0 / best / 1e9;
}

}  // namespace

int bench_attention(int argc, char** argv) {
  const auto args = parse_args("bench attention", argc, argv,
                               {"kinds", "lengths", "dense-max", "heads", "head-dim", "batch", "block", "key-block", "density",
                                "repeat", "threads", "one-kind", "one-length"},
                               {"json", "non-causal"});
  if (args.help || !args.positional.empty()) {
    std::puts(R"(usage: longnet bench attention [options]

Times each attention kernel at each length, forward and forward+backward, float32, and reports
peak RSS and effective GFLOP/s (4 * head_dim flops per attended (query, key) pair, forward),
beside the machine's float32 GEMM GFLOP/s (2048^3) measured in the same run. Every
measurement runs in a fresh process, so its peak RSS is its own.

  --kinds LIST       kernels (default dense,dilated,block_sparse)
  --lengths LIST     sequence lengths (default 2048,4096,8192,16384,32768,65536)
  --dense-max T      longest length for dense (default 16384)
  --heads H          (default 8)       --head-dim D   (default 64)   --batch B (default 1)
  --block N          attention.block_size (default 256)
  --key-block N      attention.key_block (default 1024)
  --density F        block_sparse density target (default 0.1)
  --non-causal       (default causal)
  --repeat N         timed rounds, best kept (default 3)
  --threads N        intra-op threads (default: all cores)
  --json             one JSON object per line instead of the table

dilated uses segments [2048, 4096, 8192, 16384] with rates [1, 2, 4, 8].)");
    if (args.help) return 0;
    throw ConfigError("longnet bench attention: unexpected argument '" + args.positional[0] + "'");
  }
  auto num = [&](const char* name, int64_t def) {
    return args.values.count(name) ? parse_list(name, args.values.at(name)).at(0) : def;
  };
  BenchSetup s;
  s.heads = num("heads", 8);
  s.head_dim = num("head-dim", 64);
  s.batch = num("batch", 1);
  s.block = num("block", 256);
  s.key_block = num("key-block", 1024);
  s.repeat = num("repeat", 3);
  s.threads = static_cast<int>(num("threads", 0));
  s.causal = !args.flags.count("non-causal");
  if (args.values.count("density")) s.density = std::stod(args.values.at("density"));
  if (s.heads < 1 || s.head_dim < 1 || s.batch < 1 || s.block < 1 || s.key_block < 1 || s.repeat < 1)
    throw ConfigError("longnet bench: --heads, --head-dim, --batch, --block, --key-block and --repeat must be >= 1");

  if (args.values.count("one-kind")) {  // child mode
    std::printf("%s\n", measure_one(args.values.at("one-kind"), num("one-length", 0), s).dump().c_str());
    return 0;
  }
  std::vector<std::string> kinds;
  {
    std::stringstream ss(args.values.count("kinds") ? args.values.at("kinds") : "dense,dilated,block_sparse");
    for (std::string k; std::getline(ss, k, ',');) {
      if (!attention::has_kernel(k)) throw ConfigError("longnet bench: --kinds: unknown kernel '" + k + "'");
      kinds.push_back(k);
    }
  }
  const auto lengths = parse_list("lengths", args.values.count("lengths") ? args.values.at("lengths")
                                                                          : "2048,4096,8192,16384,32768,65536");
  const int64_t dense_max = num("dense-max", 16384);
  const bool json = args.flags.count("json");
  const double gemm = gemm_gflops(s.threads);
  if (json) {
    std::printf("%s\n", nlohmann::json({{"gemm_gflops", gemm}}).dump().c_str());
  } else {
    std::printf("float32 GEMM 2048^3: %.1f GFLOP/s\n\n", gemm);
    std::printf("%-13s %7s %3s %4s %6s %10s %12s %10s %8s %7s %8s\n", "kind", "T", "H", "D", "causal", "fwd ms",
                "fwd+bwd ms", "peak RSS", "GFLOP/s", "% GEMM", "density");
  }
  std::fflush(stdout);
  const std::string exe = self_exe();
  for (const auto& kind : kinds) {
    for (int64_t T : lengths) {
      if (kind == "dense" && T > dense_max) continue;
      std::ostringstream cmd;
      cmd << "'" << exe << "' bench attention --one-kind " << kind << " --one-length " << T << " --heads " << s.heads
          << " --head-dim " << s.head_dim << " --batch " << s.batch << " --block " << s.block << " --key-block " << s.key_block << " --repeat "
          << s.repeat << " --threads " << s.threads << " --density " << s.density << (s.causal ? "" : " --non-causal");
      int rc = 0;
      const auto j = run_child(cmd.str(), rc);
      if (rc != 0 || !j.is_object()) {
        std::fprintf(stderr, "bench: %s at T=%lld failed (exit %d)%s\n", kind.c_str(), static_cast<long long>(T), rc,
                     oom_hint(rc));
        continue;
      }
      if (json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        const std::string density = j.contains("density") ? std::to_string(j["density"].get<double>()).substr(0, 5) : "-";
        std::printf("%-13s %7lld %3lld %4lld %6s %10.1f %12.1f %7.0f MB %8.1f %6.0f%% %8s\n", kind.c_str(),
                    static_cast<long long>(T), static_cast<long long>(s.heads), static_cast<long long>(s.head_dim),
                    s.causal ? "yes" : "no", j["fwd_ms"].get<double>(), j["fwd_bwd_ms"].get<double>(),
                    j["peak_rss_mb"].get<double>(), j["gflops"].get<double>(), 100.0 * j["gflops"].get<double>() / gemm,
                    density.c_str());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace longnet::tools
