#include "attention/documents.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/nonzero.h>
#include <c10/util/Exception.h>

namespace longnet::attention {

DocumentStarts document_starts(const at::Tensor& tokens, int64_t separator) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong, "document_starts takes tokens [B, T] int64");
  DocumentStarts starts(static_cast<size_t>(tokens.size(0)));
  const auto at_separator = at::eq(tokens.cpu(), separator);
  for (int64_t b = 0; b < tokens.size(0); ++b) {
    auto& row = starts[static_cast<size_t>(b)];
    row.push_back(0);
    const auto where = at::nonzero(at_separator[b]).flatten().contiguous();
    for (int64_t i = 0; i < where.numel(); ++i) {
      const int64_t p = where.data_ptr<int64_t>()[i];
      if (p > 0) row.push_back(p);
    }
  }
  return starts;
}

namespace {

// Restores the kernel's dropout key when the documents are done, or one of them throws.
struct KeyRestore {
  DropoutKey& key;
  DropoutKey saved;
  ~KeyRestore() { key = saved; }
};

}  // namespace

AttentionOutput attend_documents(AttentionKernel& kernel, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, bool causal, const DocumentStarts& starts) {
  const int64_t B = q.size(0), T = q.size(1);
  TORCH_CHECK(static_cast<int64_t>(starts.size()) == B, "attend_documents: ", starts.size(), " rows of starts for ",
              B, " batch rows");
  bool whole = true;
  for (const auto& row : starts) whole = whole && row.size() == 1;
  if (whole) return kernel.forward(q, k, v, causal);
  KeyRestore restore{kernel.dropout_key(), kernel.dropout_key()};
  std::vector<at::Tensor> outs, lses;
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = starts[static_cast<size_t>(b)];
    TORCH_CHECK(!row.empty() && row.front() == 0, "attend_documents: row ", b, "'s first document must start at 0");
    std::vector<at::Tensor> row_out, row_lse;
    for (size_t i = 0; i < row.size(); ++i) {
      const int64_t begin = row[i], end = i + 1 < row.size() ? row[i + 1] : T;
      TORCH_CHECK(begin < end && end <= T, "attend_documents: row ", b, "'s starts must ascend within [0, ", T, ")");
      auto& key = kernel.dropout_key();
      key.sample0 = restore.saved.sample0 + b;
      key.position0 = restore.saved.position0 + begin;
      const auto part = [&](const at::Tensor& x) { return x.narrow(0, b, 1).narrow(1, begin, end - begin); };
      auto r = kernel.forward(part(q), part(k), part(v), causal);
      row_out.push_back(r.out);
      row_lse.push_back(r.lse);
    }
    outs.push_back(at::cat(row_out, 1));
    lses.push_back(at::cat(row_lse, 1));
  }
  return {at::cat(outs, 0), at::cat(lses, 0)};
}

}  // namespace longnet::attention
