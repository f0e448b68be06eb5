// longnet: one binary, one subcommand per job (train, eval, tokenizer, prepare, bench, launch).
#include <spdlog/spdlog.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "attention/registry.h"
#include "common/errors.h"
#include "tools/commands.h"
#include "train/runtime.h"

namespace {

const char* kUsage = R"(usage: longnet <command> [options]

commands:
  train CONFIG       train (tokenizer and token shards first, if missing); resumes from
                     <train.out_dir>/checkpoints/latest when present
  eval CONFIG        loss, perplexity and bits per byte over the validation split
  tokenizer CONFIG   train the SentencePiece tokenizer of CONFIG
  prepare CONFIG     tokenize the corpus into cached token shards
  bench attention    time and measure the attention kernels
  bench train        one training step at long context: time, tokens/s, peak RSS
  launch --nproc N -- COMMAND ...
                     N local processes with the torchrun environment (RANK, WORLD_SIZE, ...)

`longnet --version` prints the versions and whether CUDA/NCCL are built in.
Every command answers --help. Any config key can be overridden: --set key.path=value.
)";

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S] %v");
  longnet::attention::register_builtin_kernels();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::fputs(longnet::train::version_text().c_str(), stdout);
    return 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "train") return longnet::tools::cmd_train(argc - 2, argv + 2);
    if (command == "eval") return longnet::tools::cmd_eval(argc - 2, argv + 2);
    if (command == "tokenizer") return longnet::tools::cmd_tokenizer(argc - 2, argv + 2);
    if (command == "prepare") return longnet::tools::cmd_prepare(argc - 2, argv + 2);
    if (command == "bench") return longnet::tools::cmd_bench(argc - 2, argv + 2);
    if (command == "launch") return longnet::tools::cmd_launch(argc - 2, argv + 2);
    std::fprintf(stderr, "longnet: unknown command '%s' (valid: train, eval, tokenizer, prepare, bench, launch; see longnet --help)\n", command.c_str());
    return 2;
  } catch (const longnet::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error (LibTorch): %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
