// Every attention kernel against the masked oracle, forward and backward, over one kernel table
// (oracle.h): each kind's cases in float64, in float32, with two threads, and under attention
// dropout given the oracle the same mask. A kind's own rules (a pattern written out by hand,
// its planner, its masks) are tested in its own file.
#include <gtest/gtest.h>

#include <string>

#include "attention/registry.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

std::vector<std::string> table_kinds() {
  std::vector<std::string> kinds;
  for (const auto& e : kernel_table()) kinds.push_back(e.kind);
  return kinds;
}

const KernelTableEntry& entry_of(const std::string& kind) {
  for (const auto& e : kernel_table())
    if (e.kind == kind) return e;
  throw std::invalid_argument(kind);
}

class KernelOracleTest : public SeededTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // Runs every case of the kind: dropout > 0 sets attention.dropout and a fixed key, and checks
  // that the kernel in eval mode draws no mask.
  void check_cases(torch::ScalarType dtype, double tol, double dropout = 0) {
    attention::DropoutKey key;
    key.rate = dropout;
    key.seed = 3;
    key.step = 17;
    key.layer = 1;
    key.sample0 = 2;
    const auto& entry = entry_of(GetParam());
    ASSERT_FALSE(entry.cases.empty());
    for (const auto& c : entry.cases) {
      SCOPED_TRACE(describe(c) + " dtype=" + std::string(c10::toString(dtype)) + " dropout=" + std::to_string(dropout));
      auto o = c.options;
      o.dropout = dropout;
      auto kernel = attention::make_kernel(o);
      EXPECT_EQ(kernel->dropout_key().rate, dropout) << "make_kernel sets the rate from attention.dropout";
      kernel->dropout_key() = key;
      auto x = random_qkv(c.B, c.T, c.H, c.D, dtype);
      auto factors = dropout > 0 ? oracle_dropout(key, c.B, c.H, c.T, dtype) : torch::Tensor();
      expect_matches_oracle(kernel->forward(x.q, x.k, x.v, c.causal), kernel_oracle(x, o, c.causal, factors), x, tol);
      if (dropout > 0) {
        kernel->eval();
        expect_matches_oracle(kernel->forward(x.q, x.k, x.v, c.causal), kernel_oracle(x, o, c.causal), x, tol);
      }
    }
  }
};

TEST_P(KernelOracleTest, MatchesOracleFloat64) { check_cases(torch::kDouble, kFloat64Tol); }

TEST_P(KernelOracleTest, MatchesOracleFloat32) { check_cases(torch::kFloat, 1e-5); }

TEST_P(KernelOracleTest, MatchesOracleWithTwoThreads) {
  at::set_num_threads(2);
  check_cases(torch::kDouble, kFloat64Tol);
}

// The mask is a function of (seed, step, layer, sample, head, query position, key position):
// a kernel that gathers, splits or reorders pairs (segments, dilation offsets, head groups,
// gathered key blocks, key tiles) must hash each pair at its own positions and head.
TEST_P(KernelOracleTest, DropoutMatchesOracleGivenTheSameMask) { check_cases(torch::kDouble, kFloat64Tol, 0.3); }

INSTANTIATE_TEST_SUITE_P(Kernels, KernelOracleTest, ::testing::ValuesIn(table_kinds()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// A kind registered without an oracle and cases would go untested: the table covers the registry.
TEST(KernelTableTest, EveryBuiltInKindHasAnOracleAndCases) {
  attention::register_builtin_kernels();
  for (const auto& kind : attention::kernel_kinds()) {
    if (kind == "test_only") continue;  // registered by a registry test in this binary
    const auto kinds = table_kinds();
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), kind), kinds.end()) << kind << " has no oracle in oracle.cpp";
  }
  for (const auto& e : kernel_table()) {
    EXPECT_TRUE(attention::has_kernel(e.kind)) << e.kind;
    for (const auto& c : e.cases) EXPECT_EQ(c.options.kind, e.kind);
  }
}

}  // namespace
}  // namespace longnet::testing
