#include "attention/documents.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/nonzero.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <map>

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

struct Document {
  int64_t row, begin, length;
};

// The length class of a document: the power of two at or above its length.
int length_class(int64_t n) {
  int c = 0;
  while ((int64_t{1} << c) < n) ++c;
  return c;
}

}  // namespace

AttentionOutput attend_documents(AttentionKernel& kernel, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, bool causal, const DocumentStarts& starts) {
  const int64_t B = q.size(0), T = q.size(1);
  TORCH_CHECK(static_cast<int64_t>(starts.size()) == B, "attend_documents: ", starts.size(), " rows of starts for ",
              B, " batch rows");
  bool whole = true;
  for (const auto& row : starts) whole = whole && row.size() == 1;
  if (whole) return kernel.forward(q, k, v, causal);
  std::vector<Document> docs;
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = starts[static_cast<size_t>(b)];
    TORCH_CHECK(!row.empty() && row.front() == 0, "attend_documents: row ", b, "'s first document must start at 0");
    for (size_t i = 0; i < row.size(); ++i) {
      const int64_t begin = row[i], end = i + 1 < row.size() ? row[i + 1] : T;
      TORCH_CHECK(begin < end && end <= T, "attend_documents: row ", b, "'s starts must ascend within [0, ", T, ")");
      docs.push_back({b, begin, end - begin});
    }
  }
  const auto part = [](const at::Tensor& x, const Document& d) { return x.narrow(0, d.row, 1).narrow(1, d.begin, d.length); };
  std::vector<AttentionOutput> results(docs.size());
  KeyRestore restore{kernel.dropout_key(), kernel.dropout_key()};
  if (!causal || kernel.drawn().active()) {
    // Each document alone: without causal masking padding would be seen; under dropout each
    // document draws with its own batch row and positions.
    for (size_t i = 0; i < docs.size(); ++i) {
      auto& key = kernel.dropout_key();
      key.sample0 = restore.saved.sample0 + docs[i].row;
      key.position0 = restore.saved.position0 + docs[i].begin;
      results[i] = kernel.forward(part(q, docs[i]), part(k, docs[i]), part(v, docs[i]), causal);
    }
  } else {
    // Under causal masking no row sees a later one, and every kind's causal pattern of a row
    // depends on the rows before it alone (not on the length): a document padded at its end
    // gives its own rows what it gives alone. Documents of one length class run as one batch,
    // padded to the longest of them: a call per class, not per document.
    std::map<int, std::vector<size_t>> classes;
    for (size_t i = 0; i < docs.size(); ++i) classes[length_class(docs[i].length)].push_back(i);
    for (const auto& entry : classes) {
      const std::vector<size_t>& members = entry.second;  // named, not a structured binding: clang 14 cannot capture one in a lambda
      int64_t L = 0;
      for (size_t i : members) L = std::max(L, docs[i].length);
      const auto batch = [&](const at::Tensor& x) {
        std::vector<at::Tensor> rows;
        for (size_t i : members) rows.push_back(at::constant_pad_nd(part(x, docs[i]), {0, 0, 0, 0, 0, L - docs[i].length}));
        return rows.size() == 1 ? rows.front() : at::cat(rows, 0);
      };
      const auto r = kernel.forward(batch(q), batch(k), batch(v), causal);
      for (size_t j = 0; j < members.size(); ++j) {
        const int64_t n = docs[members[j]].length, row = static_cast<int64_t>(j);
        results[members[j]] = {r.out.narrow(0, row, 1).narrow(1, 0, n), r.lse.narrow(0, row, 1).narrow(1, 0, n)};
      }
    }
  }
  std::vector<at::Tensor> outs, lses;
  for (size_t i = 0; i < docs.size();) {
    std::vector<at::Tensor> row_out, row_lse;
    const int64_t row = docs[i].row;
    for (; i < docs.size() && docs[i].row == row; ++i) {
      row_out.push_back(results[i].out);
      row_lse.push_back(results[i].lse);
    }
    outs.push_back(at::cat(row_out, 1));
    lses.push_back(at::cat(row_lse, 1));
  }
  return {at::cat(outs, 0), at::cat(lses, 0)};
}

}  // namespace longnet::attention
