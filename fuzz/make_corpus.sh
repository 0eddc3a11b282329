#!/usr/bin/env bash
# Seed corpora for the fuzz harnesses, generated from the real files in ../shared (never committed):
# fuzz/make_corpus.sh DSQ_BINARY OUT_DIR -> OUT_DIR/<harness>/ one directory per harness.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dsq=$1
out=$2
shared=${DSQ_SHARED_DIR:-$here/../shared}
if [ ! -d "$shared/models" ]; then
  echo "make_corpus.sh: $shared/models not found (set DSQ_SHARED_DIR)" >&2
  exit 1
fi
m=$shared/models
rm -rf "$out"
mkdir -p "$out"/{dsq,gguf,safetensors,hf_config,llama2c,tokenizer,stats,report,calib}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Few-KiB models of every architecture (fuzz/tiny_seeds.py): the fast seeds of long campaigns.
/usr/bin/python3 "$here/fuzz/tiny_seeds.py" "$tmp/tiny"
t=$tmp/tiny
text=$tmp/text.txt
head -c 20000 "$shared/data/wikitext-2-valid.tokens.txt" > "$text"
"$dsq" -q convert "$t/tiny.gguf" -o "$out/dsq/tiny-gguf.dsq"
for a in llama-f32 llama-bf16 qwen2-f32 qwen3-f32; do
  "$dsq" -q convert "$t/tiny-$a" -o "$out/dsq/tiny-$a.dsq"
  cp "$t/tiny-$a/model.safetensors" "$out/safetensors/tiny-$a.safetensors"
  cp "$t/tiny-$a/config.json" "$out/hf_config/tiny-$a.json"
done
"$dsq" -q convert "$t/tiny-qwen2-f32" -o "$out/dsq/tiny-qwen2-zstd.dsq" --dtype f16 --zstd 3
for s in int8_asym_g32 int4_sym_g32 int3_asym_perchannel int4_asymf_g32; do
  "$dsq" -q quantize "$out/dsq/tiny-gguf.dsq" -o "$out/dsq/tiny-$s.dsq" --scheme "$s"
done
# GGUF with ggml blocks as dsq writes them: Q4_0, Q4_1 (from asymmetric 4-bit), Q8_0.
for s in int4_sym_g32 int4_asym_g32 int8_sym_g32; do
  "$dsq" -q quantize "$out/dsq/tiny-gguf.dsq" -o "$out/gguf/tiny-$s.gguf" --scheme "$s"
done
"$dsq" -q prune "$out/dsq/tiny-gguf.dsq" -o "$out/dsq/tiny-pruned.dsq" --ffn 0.25 --heads 0.5 \
  --importance magnitude
"$dsq" -q sparsify "$out/dsq/tiny-gguf.dsq" -o "$out/dsq/tiny-sparse.dsq" --topk 0.3 --calib "$text" \
  --calib-samples 4 --calib-len 32 --drift-samples 0
"$dsq" -q quantize "$out/dsq/tiny-gguf.dsq" -o "$tmp/tq.dsq" --method awq+gptq --bits 4 --group 32 \
  --calib "$text" --calib-samples 4 --calib-len 32 --save-stats "$out/stats/tiny-awq-gptq.h5"
# Statistics with a mixed-precision sensitivity table (docs/STATS.md), and its quantize report.
"$dsq" -q quantize "$out/dsq/tiny-gguf.dsq" -o "$tmp/tm.dsq" --method gptq --target-bpw 4.5 \
  --candidates int3_asym_g32,int4_sym_g32,int8_sym_g32,f16 --kld-tokens 64 --calib "$text" \
  --calib-samples 4 --calib-len 32 --save-stats "$out/stats/tiny-mixed.h5" \
  --json "$out/report/quantize_mixed.json"
cp "$t/tiny.gguf" "$out/gguf/"
cp "$t/tiny.bin" "$out/llama2c/"
# .dsq: float, RTN-quantized (every bit width), zstd, a pruned and a sparsified model.
"$dsq" -q convert "$m/stories260K/hf" -o "$out/dsq/f32.dsq"
"$dsq" -q convert "$m/stories260K/hf" -o "$out/dsq/f16_zstd.dsq" --dtype f16 --zstd 3
for s in int8_sym_g32 int4_asym_g128 int3_asym_perchannel int2_sym_g64; do
  "$dsq" -q quantize "$m/stories260K/hf" -o "$out/dsq/$s.dsq" --scheme "$s"
done
"$dsq" -q prune "$m/stories260K/hf" -o "$out/dsq/pruned.dsq" --ffn 0.25 --importance magnitude
"$dsq" -q sparsify "$m/stories260K/hf" -o "$out/dsq/sparse.dsq" --topk 0.3 \
  --calib "$shared/data/tinystories-calib.stories260K.u32" --calib-samples 4 --calib-len 64 \
  --drift-samples 0
cp "$m/stories260K/stories260K.gguf" "$out/gguf/"
for d in deepseek-llm gpt-2 llama-spm; do
  cp "$shared/data/tokenizer-tests/ggml-vocab-$d.gguf" "$out/gguf/vocab-$d.gguf"
done
cp "$m/stories260K/hf/model.safetensors" "$out/safetensors/stories260K.safetensors"
python3 - "$m/qwen2-tiny/model-00002-of-00002.safetensors" "$out/safetensors/qwen2-header.safetensors" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
open(sys.argv[2], 'wb').write(b[:8 + n] + b[8 + n:8 + n + 4096])  # the header and a little data
PY
for d in stories260K/hf qwen2-tiny qwen3-tiny deepseek-v3-tiny deepseek-v3-tiny-fp8; do
  name=$(echo "$d" | tr '/' '_')
  { cat "$m/$d/config.json"; if [ -f "$m/$d/model.safetensors.index.json" ]; then
      printf '\0'; cat "$m/$d/model.safetensors.index.json"; fi; } > "$out/hf_config/$name"
done
cp "$m/stories260K/llama2c/stories260K.bin" "$m/stories260K/llama2c/tok512.bin" "$out/llama2c/"
cp "$m/stories260K/tok512.model" "$out/tokenizer/"
cp "$m/qwen2-tiny/tokenizer.json" "$out/tokenizer/qwen.json"
cp "$m/deepseek-v3-tiny/tokenizer.json" "$out/tokenizer/deepseek.json"
# The same two files cut to their first 300 tokens and the merges among them, compact (4-5 KB
# instead of 110 KB: the campaign's tokenizer runs parse a seed per execution).
python3 - "$out/tokenizer" <<'PY'
import json, sys
for name in ["qwen", "deepseek"]:
    j = json.load(open(f"{sys.argv[1]}/{name}.json", encoding="utf-8"))
    m = j["model"]
    m["vocab"] = {t: i for t, i in m["vocab"].items() if i < 300}
    pair = lambda mg: mg.split(" ", 1) if isinstance(mg, str) else mg
    m["merges"] = [mg for mg in m["merges"]
                   if all(p in m["vocab"] for p in pair(mg)) and "".join(pair(mg)) in m["vocab"]]
    with open(f"{sys.argv[1]}/{name}-300.json", "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
PY
# A small Llama-3 shaped tokenizer.json (Sequence pre-tokenizer and post-processor, an added special
# token, byte fallback): the fields real files have, in a seed of a few hundred bytes.
cat > "$out/tokenizer/llama3-small.json" <<'JSON'
{"added_tokens": [{"id": 4, "content": "<|begin_of_text|>", "special": true}],
 "normalizer": null,
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
   {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": false},
   {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
 "post_processor": {"type": "Sequence", "processors": [
   {"type": "ByteLevel", "trim_offsets": false},
   {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                              {"Sequence": {"id": "A", "type_id": 0}}]}]},
 "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "byte_fallback": false, "ignore_merges": true,
           "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3}, "merges": ["a b"]}}
JSON
for method in gptq awq; do
  "$dsq" -q quantize "$m/stories260K/hf" -o "$tmp/q.dsq" --method $method --bits 4 --group 32 \
    --calib "$shared/data/tinystories-calib.stories260K.u32" --calib-samples 2 --calib-len 32 \
    --save-stats "$out/stats/$method.h5" --json "$out/report/quantize_$method.json"
done
"$dsq" -q eval "$tmp/q.dsq" --ref "$m/stories260K/hf" --tokens "$shared/data/tinystories-eval.stories260K.u32" \
  --ctx 64 --max-tokens 512 --json "$out/report/eval.json" > /dev/null
cp "$here/examples/budget.json" "$out/report/budget.json"
# A check report (the eval report with its "check" section; the check fails: exit 1 is expected).
"$dsq" -q check --from-report "$out/report/eval.json" --budget "$here/examples/budget.json" \
  --json "$out/report/check.json" > /dev/null || [ -s "$out/report/check.json" ]
head -c 4096 "$shared/data/tinystories-calib.stories260K.u32" > "$out/calib/ids.u32"
head -c 4096 "$shared/data/wikitext-2-valid.tokens.txt" > "$out/calib/wiki.txt"
head -c 2048 "$shared/data/fortunes-zh-eval.txt" > "$out/calib/zh.txt"
printf '{"text": "Once upon a time"}\n{"text": "there was a cat"}\n' > "$out/calib/docs.jsonl"
echo "seed corpora in $out: $(find "$out" -type f | wc -l) files"
