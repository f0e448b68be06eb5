#pragma once
// The `longnet` subcommands. Each takes the arguments after its name and returns the exit code.
namespace longnet::tools {

int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_launch(int argc, char** argv);

}  // namespace longnet::tools
