// Every attention kernel against the masked oracle, forward and backward, over one kernel table
// (oracle.h): each kind's cases in float64, in float32, with two threads, and under attention
// dropout given the oracle the same mask. A kind's own rules (a pattern written out by hand,
// its planner, its masks) are tested in its own file.
#include <gtest/gtest.h>

#include <string>

#include "attention/documents.h"
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

// model.document_mask (attention/documents.h): each document of a packed row gets what the
// kind's oracle gives on that document alone, forward and backward, in every batch row (each
// with its own documents, one of a single token), and under dropout the window's mask at the
// document's own pairs. The kernel's dropout key is left as it was.
TEST_P(KernelOracleTest, EachDocumentOfAPackedRowMatchesTheOracleOnItAlone) {
  for (const double dropout : {0.0, 0.3}) {
    attention::DropoutKey key;
    key.rate = dropout;
    key.seed = 5;
    key.step = 2;
    key.layer = 3;
    key.sample0 = 4;
    for (const auto& c : entry_of(GetParam()).cases) {
      if (c.T < 8) continue;
      SCOPED_TRACE(describe(c) + " dropout=" + std::to_string(dropout));
      auto o = c.options;
      o.dropout = dropout;
      auto kernel = attention::make_kernel(o);
      kernel->dropout_key() = key;
      attention::DocumentStarts starts;
      for (int64_t b = 0; b < c.B; ++b) starts.push_back({0, c.T / 3 + b, c.T / 3 + b + 1, 2 * c.T / 3 + b});
      auto x = random_qkv(c.B, c.T, c.H, c.D, torch::kDouble);
      const auto got = attention::attend_documents(*kernel, x.q, x.k, x.v, c.causal, starts);
      EXPECT_EQ(kernel->dropout_key().sample0, key.sample0);
      EXPECT_EQ(kernel->dropout_key().position0, key.position0);
      const auto factors = dropout > 0 ? oracle_dropout(key, c.B, c.H, c.T, torch::kDouble) : torch::Tensor();
      std::vector<torch::Tensor> outs, lses;
      for (int64_t b = 0; b < c.B; ++b) {
        std::vector<torch::Tensor> row_out, row_lse;
        const auto& row = starts[static_cast<size_t>(b)];
        for (size_t i = 0; i < row.size(); ++i) {
          const int64_t begin = row[i], n = (i + 1 < row.size() ? row[i + 1] : c.T) - begin;
          const auto part = [&](const torch::Tensor& t) { return t.narrow(0, b, 1).narrow(1, begin, n); };
          const auto f = factors.defined() ? factors.narrow(0, b, 1).narrow(2, begin, n).narrow(3, begin, n) : factors;
          const auto want = kernel_oracle({part(x.q), part(x.k), part(x.v)}, o, c.causal, f);
          row_out.push_back(want.out);
          row_lse.push_back(want.lse);
        }
        outs.push_back(torch::cat(row_out, 1));
        lses.push_back(torch::cat(row_lse, 1));
      }
      expect_matches_oracle(got, {torch::cat(outs, 0), torch::cat(lses, 0)}, x, kFloat64Tol);
    }
  }
}

// The rows of document_starts: 0, then each separator's position (a separator at 0 begins the
// first document).
TEST(DocumentStartsTest, ADocumentBeginsAtTheRowsStartAndAtEachSeparator) {
  auto tokens = torch::tensor({5, 1, 7, 7, 1, 1, 9, 2, 1, 3, 4, 5, 6, 7, 8, 9}, torch::kLong).view({2, 8});
  const auto starts = attention::document_starts(tokens, 1);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[0], (std::vector<int64_t>{0, 1, 4, 5}));
  EXPECT_EQ(starts[1], (std::vector<int64_t>{0}));
}

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
