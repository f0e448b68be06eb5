// longnet: one binary, one subcommand per job (train, eval, tokenizer, prepare, bench, launch).
#include <spdlog/spdlog.h>
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "attention/registry.h"
#include "common/errors.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/runtime.h"

int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S] %v");
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which our writers report
  // with the path and keep the last whole file, instead of the signal killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  longnet::attention::register_builtin_kernels();
  if (argc >= 2 && !std::strcmp(argv[1], "--version")) {
    std::fputs(longnet::train::version_text().c_str(), stdout);
    return 0;
  }
  using longnet::tools::Subcommand;
  namespace tools = longnet::tools;
  const std::vector<Subcommand> commands = {
      {"train", "CONFIG: train (tokenizer and token shards first, if missing); resumes from "
                "<train.out_dir>/checkpoints/latest when present", tools::cmd_train},
      {"eval", "CONFIG: loss, perplexity and bits per byte over the validation split", tools::cmd_eval},
      {"tokenizer", "CONFIG: train the SentencePiece tokenizer of CONFIG", tools::cmd_tokenizer},
      {"prepare", "CONFIG: tokenize the corpus into cached token shards", tools::cmd_prepare},
      {"generate", "CONFIG (--prompt TEXT | --prompt-file F): text from a checkpoint, streamed", tools::cmd_generate},
      {"export", "CONFIG --out DIR: a checkpoint's weights as safetensors, with config.json and the tokenizer", tools::cmd_export},
      {"bench", "attention | train | ring | core: the benchmarks", tools::cmd_bench},
      {"launch", "--nproc N -- COMMAND ...: N local processes with the torchrun environment", tools::cmd_launch},
  };
  try {
    if (argc < 2) {
      tools::dispatch("longnet", "longnet: long-context language models on LibTorch", "command", commands, 0, argv);
      return 2;  // the usage went to stdout; no command is an error
    }
    return tools::dispatch("longnet", "longnet: long-context language models on LibTorch", "command", commands,
                           argc - 1, argv + 1,
                           "`longnet --version` prints the versions and whether CUDA/NCCL are built in.\n"
                           "Every command answers --help. Any config key can be overridden: --set key.path=value.");
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
