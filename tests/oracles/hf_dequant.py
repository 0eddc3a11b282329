#!/usr/bin/python3
"""An independent dequantizer for Hugging Face quantized checkpoints, written from the published
packing conventions (GPTQ v1/v2, AWQ GEMM, compressed-tensors pack-quantized), not from dsq's
code. It reads safetensors with numpy only (Debian's python3-numpy).

    hf_dequant.py QUANT_DIR REF_DIR

Every tensor of REF_DIR (a float checkpoint of the same model, e.g. `dsq export --hf float
--dtype f32`) is rebuilt from QUANT_DIR: stored floats are read, quantized linears dequantized.
Exit 0 when every tensor equals REF_DIR's bit for bit, printing one summary line; exit 1 listing
the differences.

Conventions (../shared/docs/ANCHORS.md, AutoGPTQ, AutoAWQ, compressed-tensors):
  GPTQ   qweight int32 [in/pf, out], input i in bits (i % pf)*b of row i // pf; qzeros int32
         [groups, out/pf] along the output, holding z - 1 (checkpoint_format gptq) or z (gptq_v2);
         scales f16 [groups, out]; g_idx int32 [in]: W[o, i] = s[g, o] * (q[i, o] - z[g, o]),
         g = g_idx[i].
  AWQ    qweight int32 [in, out/8] along the output in the order [0,2,4,6,1,3,5,7] (unpacked
         with the reverse order [0,4,1,5,2,6,3,7]); qzeros likewise; scales f16 [in/G, out];
         W[o, i] = (q - z) * s with the group i // G.
  compressed-tensors pack-quantized: weight_packed int32 [out, ceil(in/pf)] along the input,
         values stored as signed + 2^(b-1); weight_zero_point int32 [ceil(out/pf), groups] along
         the output (asymmetric only), likewise; weight_scale [out, groups]; weight_shape [2].
"""
import json
import os
import re
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I32": "<i4", "I64": "<i8", "I8": "i1", "U8": "u1"}


def read_dir(d):
    """name -> numpy array for every tensor of a (sharded) safetensors directory."""
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    out = {}
    for f in files:
        raw = open(os.path.join(d, f), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            a = np.frombuffer(raw[base + b:base + e], dtype=DTYPES[info["dtype"]])
            if info["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            out[name] = a.reshape(info["shape"])
    return out


def unpack_rows(packed, bits, n):
    """int32 [r, c] packed along dim 0 (pf values per word, lowest bits first) -> [n, c]."""
    pf = 32 // bits
    mask = (1 << bits) - 1
    w = packed.view(np.uint32)
    out = np.zeros((w.shape[0] * pf, w.shape[1]), dtype=np.int64)
    for k in range(pf):
        out[k::pf, :] = (w >> np.uint32(bits * k)) & np.uint32(mask)
    return out[:n]


def unpack_cols(packed, bits, n):
    """int32 [r, c] packed along dim 1 -> [r, n]."""
    return unpack_rows(np.ascontiguousarray(packed.T), bits, n).T


def f32(x):
    return x.astype(np.float32)


def gptq(t, m, q):
    bits = q["bits"]
    qweight, qzeros, scales, g_idx = (t[m + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    n_in, n_out = qweight.shape[0] * 32 // bits, qweight.shape[1]
    iw = unpack_rows(qweight, bits, n_in)                    # [in, out]
    z = unpack_cols(qzeros, bits, n_out)                     # [groups, out]
    if q.get("checkpoint_format", "gptq") == "gptq":
        z = z + 1                                            # v1 stores z - 1
    g = g_idx.astype(np.int64)
    w = f32(scales)[g, :] * f32(iw - z[g, :])
    return w.T


AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def awq(t, m, q):
    qweight, qzeros, scales = (t[m + s] for s in (".qweight", ".qzeros", ".scales"))
    G = q["group_size"]

    def unpack(p):
        u = unpack_cols(p, 4, p.shape[1] * 8)                # word j's nibble k at column 8j + k
        cols = np.arange(u.shape[1])
        order = (cols // 8) * 8 + np.array(AWQ_REVERSE_ORDER)[cols % 8]
        return u[:, order]
    iw, z = unpack(qweight), unpack(qzeros)
    g = np.arange(iw.shape[0]) // G
    w = f32(iw - z[g, :]) * f32(scales)[g, :]
    return w.T


def compressed(t, m, args):
    bits, offset = args["num_bits"], 1 << (args["num_bits"] - 1)
    n_out, n_in = (int(v) for v in t[m + ".weight_shape"])
    q = unpack_cols(t[m + ".weight_packed"], bits, n_in) - offset
    scale = t[m + ".weight_scale"]
    G = n_in if args["strategy"] == "channel" else args["group_size"]
    zp = np.zeros(scale.shape, dtype=np.int64)
    if not args["symmetric"]:
        zp = unpack_rows(t[m + ".weight_zero_point"], bits, n_out) - offset
    g = np.arange(n_in) // G
    return f32(q - zp[:, g]) * f32(scale)[:, g]


def main():
    qdir, rdir = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(qdir, "config.json")))
    q = cfg.get("quantization_config")
    t, ref = read_dir(qdir), read_dir(rdir)
    method = q["quant_method"] if q else "none"
    groups = []
    if method == "compressed-tensors":
        assert q["format"] == "pack-quantized", q["format"]
        groups = list(q["config_groups"].values())
    bad, packed = [], 0
    for name, want in ref.items():
        m = name[:-len(".weight")] if name.endswith(".weight") else None
        if name in t:
            got = f32(t[name])
        elif method == "gptq" and m + ".qweight" in t:
            got = gptq(t, m, q)
        elif method == "awq" and m + ".qweight" in t:
            got = awq(t, m, q)
        elif method == "compressed-tensors" and m + ".weight_packed" in t:
            match = [g for g in groups if "Linear" in g["targets"] or m in g["targets"]
                     or any(x.startswith("re:") and re.match(x[3:], m) for x in g["targets"])]
            assert len(match) == 1, (m, len(match))
            got = compressed(t, m, match[0]["weights"])
        else:
            bad.append(name + ": missing")
            continue
        packed += name not in t
        want = f32(want)
        if got.shape != want.shape or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            diff = "shape" if got.shape != want.shape else \
                int(np.sum(got.view(np.uint32) != want.view(np.uint32)))
            bad.append("%s: differs (%s)" % (name, diff))
    if bad:
        print("\n".join(bad))
        return 1
    print("ok %s: %d tensors equal, %d dequantized from packed codes" % (method, len(ref), packed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
