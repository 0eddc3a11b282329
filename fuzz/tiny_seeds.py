#!/usr/bin/python3
"""Small seed inputs for the fuzz harnesses (fuzz/make_corpus.sh): a few-KiB model of each
architecture as a Hugging Face directory (config.json + model.safetensors), a llama2.c checkpoint
and a GGUF file with a tiny vocabulary. Small seeds keep libFuzzer at thousands of executions per
second, where stories260K's 1 MB files allow a hundred. Python standard library only.
Usage: tiny_seeds.py OUT_DIR"""
import json, os, random, struct, sys

D, L, H, KV, HD, FF, V = 32, 2, 4, 2, 8, 48, 288
rng = random.Random(5)


def mat(rows, cols):
    return [rng.uniform(-0.5, 0.5) for _ in range(rows * cols)]


def tensors(arch):
    t = {"model.embed_tokens.weight": ([V, D], mat(V, D)), "model.norm.weight": ([D], [1.0] * D)}
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = ([D], [1.0] * D)
        t[p + "post_attention_layernorm.weight"] = ([D], [1.0] * D)
        for n, r, c in [("q_proj", H * HD, D), ("k_proj", KV * HD, D), ("v_proj", KV * HD, D),
                        ("o_proj", D, H * HD)]:
            t[p + "self_attn." + n + ".weight"] = ([r, c], mat(r, c))
        if arch == "qwen2":
            for n, r in [("q_proj", H * HD), ("k_proj", KV * HD), ("v_proj", KV * HD)]:
                t[p + "self_attn." + n + ".bias"] = ([r], mat(r, 1))
        if arch == "qwen3":
            t[p + "self_attn.q_norm.weight"] = ([HD], [1.0] * HD)
            t[p + "self_attn.k_norm.weight"] = ([HD], [1.0] * HD)
        for n, r, c in [("gate_proj", FF, D), ("up_proj", FF, D), ("down_proj", D, FF)]:
            t[p + "mlp." + n + ".weight"] = ([r, c], mat(r, c))
    return t


def bf16(x):
    return struct.pack("<H", struct.unpack("<I", struct.pack("<f", x))[0] >> 16)


def write_safetensors(path, ts, dtype):
    header, blobs, off = {}, [], 0
    for name, (shape, vals) in ts.items():
        data = b"".join(bf16(v) for v in vals) if dtype == "BF16" else struct.pack(f"<{len(vals)}f", *vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def hf_dir(out, arch, dtype):
    d = os.path.join(out, f"tiny-{arch}-{dtype.lower()}")
    os.makedirs(d, exist_ok=True)
    names = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
    cfg = {"architectures": [names[arch]], "model_type": arch, "hidden_size": D,
           "intermediate_size": FF, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "head_dim": HD, "vocab_size": V, "rms_norm_eps": 1e-5,
           "max_position_embeddings": 128, "tie_word_embeddings": True, "bos_token_id": 1,
           "eos_token_id": 2}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    write_safetensors(os.path.join(d, "model.safetensors"), tensors(arch), dtype)
    return d


def llama2c(path):
    t = tensors("llama")
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", D, FF, L, H, KV, V, 64))
        def put(vals):
            f.write(struct.pack(f"<{len(vals)}f", *vals))
        put(t["model.embed_tokens.weight"][1])
        for key in ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                    "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                    "post_attention_layernorm.weight", "mlp.gate_proj.weight",
                    "mlp.down_proj.weight", "mlp.up_proj.weight"]:
            for l in range(L):
                put(t[f"model.layers.{l}.{key}"][1])
        put(t["model.norm.weight"][1])
        put([0.0] * (64 * HD // 2) * 2)  # freq_cis_real, freq_cis_imag


def gguf(path):
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + \
             ["\u2581", "\u2581a", "a", "b", "c", "\u2581the", "t", "h", "e", "\u2581b", "o", "n",
              "\u2581o", "u", "p", "i", "m", "s", "r", "d"]
    tokens += [f"x{i}" for i in range(V - len(tokens))]
    kv = [("general.architecture", 8, s("llama")), ("llama.block_count", 4, struct.pack("<I", L)),
          ("llama.embedding_length", 4, struct.pack("<I", D)),
          ("llama.feed_forward_length", 4, struct.pack("<I", FF)),
          ("llama.attention.head_count", 4, struct.pack("<I", H)),
          ("llama.attention.head_count_kv", 4, struct.pack("<I", KV)),
          ("llama.context_length", 4, struct.pack("<I", 128)),
          ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
          ("tokenizer.ggml.model", 8, s("llama")),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(tokens)) + b"".join(s(x) for x in tokens)),
          ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(tokens)) + struct.pack(f"<{len(tokens)}f", *[-float(i) for i in range(len(tokens))])),
          ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(tokens)) + struct.pack(f"<{len(tokens)}i", *([2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259)))),
          ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
          ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2))]
    t = tensors("llama")
    gg = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for l in range(L):
        for hf, g in [("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"),
                      ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                      ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
                      ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")]:
            gg[f"model.layers.{l}.{hf}.weight"] = f"blk.{l}.{g}.weight"
    infos, blobs, off = b"", b"", 0
    for hf, name in gg.items():
        shape, vals = t[hf]
        data = struct.pack(f"<{len(vals)}f", *vals)
        dims = list(reversed(shape))
        infos += s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", 0, off)
        pad = (-len(data)) % 32
        blobs += data + b"\0" * pad
        off += len(data) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(gg), len(kv))
    for k, ty, v in kv:
        head += s(k) + struct.pack("<I", ty) + v
    head += infos
    head += b"\0" * ((-len(head)) % 32)
    with open(path, "wb") as f:
        f.write(head + blobs)


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for arch in ["llama", "qwen2", "qwen3"]:
        hf_dir(out, arch, "F32")
    hf_dir(out, "llama", "BF16")
    llama2c(os.path.join(out, "tiny.bin"))
    gguf(os.path.join(out, "tiny.gguf"))
