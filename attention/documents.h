#pragma once
// Document masking in packed windows (model.document_mask). A window that holds several
// documents end to end is attended as if each document were a sequence of its own: each
// document's rows get what the kernel computes on that document alone, so no query sees another
// document's keys, and a sparse pattern's segments and blocks start at the document's first
// token. One rule for every kind, as flash-attention's variable-length batches (cu_seqlens) do
// it: the kernel runs on each document's rows, and needs no mask of its own. Under causal
// masking documents of similar length run as one batch, each padded at its end.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "attention/kernel.h"

namespace longnet::attention {

// Where the documents of each batch row begin: row b's starts, ascending, the first one 0.
using DocumentStarts = std::vector<std::vector<int64_t>>;

// tokens [B, T] int64 -> each row's starts: 0 and every position that holds `separator`. The
// separator (the tokenizer's end-of-document token, which the corpus puts between documents)
// begins the document after it, as its first token: the first token of a document is then
// predicted from the separator alone, and a document's last token predicts the separator
// from that document.
DocumentStarts document_starts(const at::Tensor& tokens, int64_t separator);

// kernel.forward on each document's rows of q, k, v ([B, T, H, D]) -> out [B, T, H, D] and
// lse [B, T, H] with every row back in its place. Under attention dropout a document draws the
// pairs of its batch row at its own positions in the window (DropoutKey::sample0, position0),
// so the masks are those of the whole window's pairs that survive the document mask.
AttentionOutput attend_documents(AttentionKernel& kernel, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, bool causal, const DocumentStarts& starts);

}  // namespace longnet::attention
