// llama2.c checkpoints (Karpathy's run.c format).
//
// Legacy version 0 (no magic): 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len} (vocab_size < 0: the classifier is not shared with the embedding), then
// float32 arrays: tok_emb[vocab, dim], rms_att[L, dim], wq[L, dim, dim], wk[L, kv_dim, dim],
// wv[L, kv_dim, dim], wo[L, dim, dim], rms_ffn[L, dim], w1[L, hidden, dim], w2[L, dim, hidden],
// w3[L, hidden, dim], rms_final[dim], freq_cis_real[seq_len, head_size/2], freq_cis_imag[same]
// (skipped: dsq recomputes RoPE), and wcls[vocab, dim] when unshared.
// Version 1 ("ak42" magic, 256-byte header with a shared_classifier byte): float32 arrays
// rms_att, rms_ffn, rms_final, tok_emb, wq, wk, wv, wo, w1, w2, w3, [wcls]. Version 2 (int8
// groups) is rejected with a clear error.
//
// q/k rows are in Meta interleaved RoPE order and are permuted to the canonical rotate_half order
// on load (like GGUF llama). Without a magic, a v0 file is recognised when its header is plausible
// and its size is exactly what the header implies (or the name ends in .bin, so a truncated file
// gets a precise error instead of "not a recognised model").
//
// Tokenizer reference (ws.metadata["tokenizer"]): a SentencePiece *.model in the checkpoint's
// directory, else in its parent, whose piece count equals vocab_size, as {"kind":"sentencepiece"};
// otherwise tokenizer.bin or tok<vocab>.bin beside the checkpoint as {"kind":"llama2c"}. bos/eos
// are llama2.c's fixed 1 and 2.
#pragma once

#include <string>

#include "formats/format_table.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

bool sniff_llama2c(const std::string& path);
WeightStore read_llama2c(const std::string& path, const OpenOptions& opts);

}  // namespace dsq::formats
