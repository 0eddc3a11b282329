// Corrupt checkpoints (HF / safetensors, GGUF, llama2.c), generated from a named corruption enum:
// each must fail with one dsq::Error line naming the file and the tensor or field. Plus sweeps
// (truncation at many points, random byte mutations) that must never crash (CI runs these under
// ASan+UBSan).
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "formats/format_table.h"
#include "formats/gguf/gguf.h"
#include "lib/core/error.h"
#include "tests/formats/reader_fixtures.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

using namespace fixtures;
namespace fs = std::filesystem;

enum class Corruption {
  kBadMagic,
  kBadVersion,
  kTruncatedHeader,
  kTruncatedMetadata,
  kTruncatedTensorTable,
  kTruncatedData,
  kHeaderLengthPastEnd,
  kBadHeaderJson,
  kOffsetOutOfRange,
  kOverlappingOffsets,
  kMisalignedOffset,
  kSpanMismatch,
  kOverflowingShape,
  kNegativeShape,
  kUnknownDtype,
  kUnsupportedDtype,
  kRowsNotDivisible,
  kDuplicateTensor,
  kDuplicateKey,
  kDuplicateAcrossShards,
  kMissingShard,
  kShardNameTooLong,
  kIndexNamesAbsentTensor,
  kUnlistedTensor,
  kUnknownTensorName,
  kConfigDisagreesShape,
  kConfigDisagreesLayers,
  kConfigMissingField,
  kAbsurdStringLength,
  kAbsurdArrayLength,
  kAbsurdKvCount,
  kAbsurdTensorCount,
  kDeepNesting,
  kBadBool,
  kUnknownValueType,
  kBadHeaderWidths,
};

enum class Fmt { kHf, kHfSharded, kGguf, kLlama2c };

struct Case {
  const char* name;
  Fmt fmt;
  Corruption what;
  std::vector<std::string> expect;  // substrings of the message, besides the file
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

// ---- base files ----------------------------------------------------------------------------
const ModelConfig& cfg() {
  static const ModelConfig c = tiny_config("llama", /*tied=*/false);
  return c;
}
const std::vector<SynthTensor>& weights() {
  static const auto w = synth_weights(cfg());
  return w;
}
std::vector<StTensor> st_tensors() {
  return hf_tensors(weights(), [](const SynthTensor&) { return DType::kF32; });
}

void replace_once(std::string& s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
}

// Writes the corrupted checkpoint; returns the path to open and sets *file to the file the
// message must name.
std::string make_hf(const Case& k, const testing::TempDir& tmp, std::string* file) {
  json config = hf_config(cfg());
  auto ts = st_tensors();
  const std::string st = tmp.file("model.safetensors");
  *file = st;
  std::string data;
  json h = st_header(ts, &data);
  std::string header_text;
  auto bytes = [&]() { return st_file(header_text.empty() ? h.dump() : header_text, data); };
  std::string out;
  switch (k.what) {
    case Corruption::kTruncatedHeader: out = bytes().substr(0, 5); break;
    case Corruption::kHeaderLengthPastEnd:
      out = bytes();
      patch<uint64_t>(out, 0, out.size());
      break;
    case Corruption::kTruncatedMetadata: out = bytes().substr(0, 200); break;
    case Corruption::kTruncatedData: out = bytes().substr(0, bytes().size() - 100); break;
    case Corruption::kBadHeaderJson:
      header_text = h.dump();
      header_text.back() = ',';
      out = bytes();
      break;
    case Corruption::kOffsetOutOfRange:
      h["model.layers.0.mlp.up_proj.weight"]["data_offsets"] = {uint64_t{1} << 40,
                                                                (uint64_t{1} << 40) + 8192};
      out = bytes();
      break;
    case Corruption::kOverlappingOffsets:
      h["model.layers.1.mlp.gate_proj.weight"]["data_offsets"] =
          h["model.layers.1.mlp.up_proj.weight"]["data_offsets"];
      out = bytes();
      break;
    case Corruption::kSpanMismatch:
      h["model.norm.weight"]["shape"] = {31};
      out = bytes();
      break;
    case Corruption::kOverflowingShape:
      h["model.norm.weight"]["shape"] = {uint64_t{1} << 62, 8};
      out = bytes();
      break;
    case Corruption::kNegativeShape:
      h["model.norm.weight"]["shape"] = {-32};
      out = bytes();
      break;
    case Corruption::kUnknownDtype:
      h["model.norm.weight"]["dtype"] = "F8_E5M2";
      out = bytes();
      break;
    case Corruption::kDuplicateTensor: {
      // JSON objects cannot hold a repeated key, so write the header text by hand.
      header_text = h.dump();
      header_text.pop_back();
      header_text += ",\"model.norm.weight\":" + h["model.norm.weight"].dump() + "}";
      out = bytes();
      break;
    }
    case Corruption::kUnknownTensorName:
      h["model.layers.0.self_attn.q_norm.weight"] = h["model.norm.weight"];
      h.erase("model.norm.weight");
      out = bytes();
      break;
    case Corruption::kConfigDisagreesShape:
      config["intermediate_size"] = 60;
      out = bytes();
      *file = tmp.file("model.safetensors");
      break;
    case Corruption::kConfigDisagreesLayers:
      config["num_hidden_layers"] = 1;
      out = bytes();
      break;
    case Corruption::kConfigMissingField:
      config.erase("hidden_size");
      out = bytes();
      *file = tmp.file("config.json");
      break;
    default: ADD_FAILURE() << "no HF case for " << k.name;
  }
  write_file(tmp.file("config.json"), config.dump());
  write_file(st, out);
  return tmp.path().string();
}

std::string make_hf_sharded(const Case& k, const testing::TempDir& tmp, std::string* file) {
  write_file(tmp.file("config.json"), hf_config(cfg()).dump());
  auto ts = st_tensors();
  std::vector<StTensor> a(ts.begin(), ts.begin() + 10), b(ts.begin() + 10, ts.end());
  json wm = json::object();
  for (const auto& t : a) wm[t.name] = "a.safetensors";
  for (const auto& t : b) wm[t.name] = "b.safetensors";
  *file = tmp.file("model.safetensors.index.json");
  switch (k.what) {
    case Corruption::kMissingShard: break;
    case Corruption::kShardNameTooLong:  // the file system refuses the name (ENAMETOOLONG)
      for (const auto& t : b) wm[t.name] = std::string(5000, 'b') + ".safetensors";
      break;
    case Corruption::kDuplicateAcrossShards:
      b.push_back(a.front());
      *file = tmp.file("b.safetensors");
      break;
    case Corruption::kIndexNamesAbsentTensor: wm["model.layers.9.mlp.up_proj.weight"] = "b.safetensors"; break;
    case Corruption::kUnlistedTensor:
      wm.erase(b.back().name);
      *file = tmp.file("b.safetensors");
      break;
    default: ADD_FAILURE() << "no sharded case for " << k.name;
  }
  std::string da, db;
  write_file(tmp.file("a.safetensors"), st_file(st_header(a, &da).dump(), da));
  if (k.what != Corruption::kMissingShard)
    write_file(tmp.file("b.safetensors"), st_file(st_header(b, &db).dump(), db));
  write_file(tmp.file("model.safetensors.index.json"), json{{"weight_map", wm}}.dump());
  return tmp.path().string();
}

// Overwrites the u32 value stored after metadata key `key` (key bytes, u32 type, value).
void patch_u32_value(std::string& s, const std::string& key, uint32_t v) {
  const auto at = s.find(key);
  ASSERT_NE(at, std::string::npos) << key;
  patch<uint32_t>(s, at + key.size() + 4, v);
}

GgufBuilder base_gguf() {
  return gguf_model(cfg(), weights(), [](const SynthTensor&) { return kGgmlF32; });
}

std::string make_gguf(const Case& k, const testing::TempDir& tmp, std::string* file) {
  const std::string path = tmp.file("m.gguf");
  *file = path;
  GgufBuilder b = base_gguf();
  switch (k.what) {
    case Corruption::kDeepNesting: {
      std::string payload;
      for (int i = 0; i < 12; ++i) {
        put<uint32_t>(payload, 9);
        put<uint64_t>(payload, 1);
      }
      put<uint32_t>(payload, 4);
      put<uint64_t>(payload, 0);
      b.kv_raw("x.nested", 9, payload);
      break;
    }
    case Corruption::kBadBool: b.kv_raw("x.flag", 7, "\x07"); break;
    case Corruption::kUnknownValueType: b.kv_raw("x.odd", 13, ""); break;
    default: break;
  }
  std::string s = b.build();
  auto& m = b.marks;
  const std::string up = "tensor.blk.1.ffn_up.weight.";
  switch (k.what) {
    case Corruption::kBadMagic: s[3] = 'X'; break;
    case Corruption::kBadVersion: patch<uint32_t>(s, 4, 7); break;
    case Corruption::kTruncatedHeader: s.resize(12); break;
    case Corruption::kTruncatedMetadata: s.resize(m.at("kv.tokenizer.ggml.tokens.len") + 30); break;
    case Corruption::kTruncatedTensorTable: s.resize(m.at(up + "dims") + 6); break;
    case Corruption::kTruncatedData: s.resize(s.size() - 100); break;
    case Corruption::kOffsetOutOfRange: patch<uint64_t>(s, m.at(up + "offset"), uint64_t{1} << 50); break;
    case Corruption::kOverlappingOffsets: {
      uint64_t gate;
      std::memcpy(&gate, s.data() + m.at("tensor.blk.1.ffn_gate.weight.offset"), 8);
      patch<uint64_t>(s, m.at(up + "offset"), gate);
      break;
    }
    case Corruption::kMisalignedOffset: {
      uint64_t off;
      std::memcpy(&off, s.data() + m.at(up + "offset"), 8);
      patch<uint64_t>(s, m.at(up + "offset"), off + 4);
      break;
    }
    case Corruption::kOverflowingShape:
      patch<uint64_t>(s, m.at(up + "dims") + 4, uint64_t{1} << 40);
      patch<uint64_t>(s, m.at(up + "dims") + 12, uint64_t{1} << 40);
      break;
    case Corruption::kUnknownDtype: patch<uint32_t>(s, m.at(up + "type"), 99); break;
    case Corruption::kUnsupportedDtype:  // q5_0: same 32-block, needs 22/32 bytes per element
      patch<uint32_t>(s, m.at(up + "type"), 6);
      break;
    case Corruption::kRowsNotDivisible: patch<uint32_t>(s, m.at("tensor.blk.1.attn_k.weight.type"), 12); break;
    case Corruption::kDuplicateTensor: replace_once(s, "blk.0.attn_k.weight", "blk.0.attn_q.weight"); break;
    case Corruption::kDuplicateKey:
      replace_once(s, "tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id");
      break;
    case Corruption::kUnknownTensorName: replace_once(s, "blk.1.ffn_up.weight", "blk.1.ffn_xx.weight"); break;
    case Corruption::kConfigDisagreesShape: patch_u32_value(s, "llama.feed_forward_length", 60); break;
    case Corruption::kConfigDisagreesLayers: patch_u32_value(s, "llama.block_count", 1); break;
    case Corruption::kAbsurdStringLength:
      patch<uint64_t>(s, m.at("kv.general.architecture.len"), uint64_t{1} << 62);
      break;
    case Corruption::kAbsurdArrayLength:
      patch<uint64_t>(s, m.at("kv.tokenizer.ggml.tokens.len"), uint64_t{1} << 61);
      break;
    case Corruption::kAbsurdKvCount: patch<uint64_t>(s, m.at("n_kv"), uint64_t{1} << 40); break;
    case Corruption::kAbsurdTensorCount: patch<uint64_t>(s, m.at("n_tensors"), uint64_t{1} << 40); break;
    default: break;
  }
  write_file(path, s);
  return path;
}

std::string make_llama2c(const Case& k, const testing::TempDir& tmp, std::string* file) {
  const std::string path = tmp.file("m.bin");
  *file = path;
  std::string s = llama2c_file(cfg(), weights(), k.what == Corruption::kBadVersion ? 1 : 0);
  switch (k.what) {
    case Corruption::kTruncatedData: s.resize(s.size() / 2); break;
    case Corruption::kBadVersion: patch<int32_t>(s, 4, 7); break;
    case Corruption::kBadHeaderWidths: patch<int32_t>(s, 12, 3); break;  // n_heads 3 of dim 32
    default: ADD_FAILURE() << "no llama2c case for " << k.name;
  }
  write_file(path, s);
  return path;
}

const Case kCases[] = {
    {"hf_truncated_header", Fmt::kHf, Corruption::kTruncatedHeader, {"truncated"}},
    {"hf_header_length_past_end", Fmt::kHf, Corruption::kHeaderLengthPastEnd, {"header length", "past the end"}},
    {"hf_truncated_inside_header", Fmt::kHf, Corruption::kTruncatedMetadata, {"past the end"}},
    {"hf_truncated_data", Fmt::kHf, Corruption::kTruncatedData, {"tensor 'model.layers.1.mlp.down_proj.weight'", "outside the data section"}},
    {"hf_bad_header_json", Fmt::kHf, Corruption::kBadHeaderJson, {"invalid JSON"}},
    {"hf_offset_out_of_range", Fmt::kHf, Corruption::kOffsetOutOfRange, {"tensor 'model.layers.0.mlp.up_proj.weight'", "outside the data section"}},
    {"hf_overlapping_offsets", Fmt::kHf, Corruption::kOverlappingOffsets, {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight", "overlap"}},
    {"hf_span_mismatch", Fmt::kHf, Corruption::kSpanMismatch, {"tensor 'model.norm.weight'", "data_offsets span 128 bytes, f32 x [31] needs 124"}},
    {"hf_overflowing_shape", Fmt::kHf, Corruption::kOverflowingShape, {"tensor 'model.norm.weight'", "overflows"}},
    {"hf_negative_shape", Fmt::kHf, Corruption::kNegativeShape, {"tensor 'model.norm.weight'", "non-negative"}},
    {"hf_unknown_dtype", Fmt::kHf, Corruption::kUnknownDtype, {"tensor 'model.norm.weight'", "dtype 'F8_E5M2' is not supported"}},
    {"hf_duplicate_tensor", Fmt::kHf, Corruption::kDuplicateTensor, {"duplicate", "model.norm.weight"}},
    {"hf_unknown_tensor", Fmt::kHf, Corruption::kUnknownTensorName, {"tensor 'model.layers.0.self_attn.q_norm.weight'", "not part of a llama model"}},
    {"hf_config_disagrees_shape", Fmt::kHf, Corruption::kConfigDisagreesShape, {"tensor 'blk.0.ffn_gate.weight'", "[64, 32]", "[60, 32]"}},
    {"hf_config_disagrees_layers", Fmt::kHf, Corruption::kConfigDisagreesLayers, {"tensor 'model.layers.1.", "with 1 layers"}},
    {"hf_config_missing_field", Fmt::kHf, Corruption::kConfigMissingField, {"field 'hidden_size': missing"}},
    {"hf_missing_shard", Fmt::kHfSharded, Corruption::kMissingShard, {"shard 'b.safetensors' is missing", "tensor 'model."}},
    {"hf_shard_name_too_long", Fmt::kHfSharded, Corruption::kShardNameTooLong, {"shard 'bbbb", "...' cannot be opened (File name too long)", "tensor 'model."}},
    {"hf_duplicate_across_shards", Fmt::kHfSharded, Corruption::kDuplicateAcrossShards, {"tensor 'model.embed_tokens.weight'", "duplicate", "a.safetensors"}},
    {"hf_index_names_absent_tensor", Fmt::kHfSharded, Corruption::kIndexNamesAbsentTensor, {"tensor 'model.layers.9.mlp.up_proj.weight'", "b.safetensors", "not there"}},
    {"hf_unlisted_tensor", Fmt::kHfSharded, Corruption::kUnlistedTensor, {"tensor '", "not listed"}},
    {"gguf_bad_magic", Fmt::kGguf, Corruption::kBadMagic, {"bad magic"}},
    {"gguf_bad_version", Fmt::kGguf, Corruption::kBadVersion, {"version 7"}},
    {"gguf_truncated_header", Fmt::kGguf, Corruption::kTruncatedHeader, {"truncated", "tensor count"}},
    {"gguf_truncated_metadata", Fmt::kGguf, Corruption::kTruncatedMetadata, {"metadata key 'tokenizer.ggml.tokens'"}},
    {"gguf_truncated_tensor_table", Fmt::kGguf, Corruption::kTruncatedTensorTable, {"truncated", "tensor 'blk.1.ffn_up.weight'"}},
    {"gguf_truncated_data", Fmt::kGguf, Corruption::kTruncatedData, {"tensor 'blk.1.ffn_down.weight'", "runs past the end"}},
    {"gguf_offset_out_of_range", Fmt::kGguf, Corruption::kOffsetOutOfRange, {"tensor 'blk.1.ffn_up.weight'", "runs past the end"}},
    {"gguf_overlapping_offsets", Fmt::kGguf, Corruption::kOverlappingOffsets, {"blk.1.ffn_up.weight", "blk.1.ffn_gate.weight", "overlaps"}},
    {"gguf_misaligned_offset", Fmt::kGguf, Corruption::kMisalignedOffset, {"tensor 'blk.1.ffn_up.weight'", "alignment"}},
    {"gguf_overflowing_shape", Fmt::kGguf, Corruption::kOverflowingShape, {"tensor 'blk.1.ffn_up.weight'", "overflows"}},
    {"gguf_unknown_dtype", Fmt::kGguf, Corruption::kUnknownDtype, {"tensor 'blk.1.ffn_up.weight'", "unknown ggml type 99"}},
    {"gguf_unsupported_dtype", Fmt::kGguf, Corruption::kUnsupportedDtype, {"tensor 'blk.1.ffn_up.weight'", "q5_0"}},
    {"gguf_rows_not_divisible", Fmt::kGguf, Corruption::kRowsNotDivisible, {"tensor 'blk.1.attn_k.weight'", "not a multiple of the q4_k block size 256"}},
    {"gguf_duplicate_tensor", Fmt::kGguf, Corruption::kDuplicateTensor, {"duplicate tensor 'blk.0.attn_q.weight'"}},
    {"gguf_duplicate_key", Fmt::kGguf, Corruption::kDuplicateKey, {"duplicate metadata key 'tokenizer.ggml.bos_token_id'"}},
    {"gguf_unknown_tensor", Fmt::kGguf, Corruption::kUnknownTensorName, {"tensor 'blk.1.ffn_xx.weight'", "not part of a llama model"}},
    {"gguf_config_disagrees_shape", Fmt::kGguf, Corruption::kConfigDisagreesShape, {"tensor 'blk.0.ffn_gate.weight'", "[64, 32]", "[60, 32]"}},
    {"gguf_config_disagrees_layers", Fmt::kGguf, Corruption::kConfigDisagreesLayers, {"tensor 'blk.1.", "with 1 layers"}},
    {"gguf_absurd_string_length", Fmt::kGguf, Corruption::kAbsurdStringLength, {"metadata key 'general.architecture'", "string length 4611686018427387904"}},
    {"gguf_absurd_array_length", Fmt::kGguf, Corruption::kAbsurdArrayLength, {"metadata key 'tokenizer.ggml.tokens'", "array of 2305843009213693952 string elements cannot fit"}},
    {"gguf_absurd_kv_count", Fmt::kGguf, Corruption::kAbsurdKvCount, {"metadata count 1099511627776"}},
    {"gguf_absurd_tensor_count", Fmt::kGguf, Corruption::kAbsurdTensorCount, {"tensor count 1099511627776"}},
    {"gguf_deep_nesting", Fmt::kGguf, Corruption::kDeepNesting, {"metadata key 'x.nested'", "nested deeper"}},
    {"gguf_bad_bool", Fmt::kGguf, Corruption::kBadBool, {"metadata key 'x.flag'", "bool value 7"}},
    {"gguf_unknown_value_type", Fmt::kGguf, Corruption::kUnknownValueType, {"metadata key 'x.odd'", "unknown value type 13"}},
    {"llama2c_truncated", Fmt::kLlama2c, Corruption::kTruncatedData, {"truncated", "tensor 'blk."}},
    {"llama2c_bad_version", Fmt::kLlama2c, Corruption::kBadVersion, {"unknown llama2.c version 7"}},
    {"llama2c_bad_header_widths", Fmt::kLlama2c, Corruption::kBadHeaderWidths, {"heads 3", "n_heads"}},
};

class CorruptCheckpoint : public ::testing::TestWithParam<Case> {};

TEST_P(CorruptCheckpoint, FailsWithOneLineNamingFileAndTensor) {
  const Case& k = GetParam();
  testing::TempDir tmp;
  std::string file;
  std::string path;
  switch (k.fmt) {
    case Fmt::kHf: path = make_hf(k, tmp, &file); break;
    case Fmt::kHfSharded: path = make_hf_sharded(k, tmp, &file); break;
    case Fmt::kGguf: path = make_gguf(k, tmp, &file); break;
    case Fmt::kLlama2c: path = make_llama2c(k, tmp, &file); break;
  }
  try {
    // A file whose magic is wrong is not detected as GGUF at all; ask the GGUF reader itself.
    const WeightStore ws = k.what == Corruption::kBadMagic ? read_gguf(path, {}) : open_model(path);
    for (const auto& n : ws.names()) ws.get(n);
    FAIL() << "opened without error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_LT(msg.size(), 400u) << "values are quoted as excerpts: " << msg;
    EXPECT_NE(msg.find("'" + file + "'"), std::string::npos) << "file not named: " << msg;
    for (const auto& s : k.expect) EXPECT_NE(msg.find(s), std::string::npos) << s << " | " << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(All, CorruptCheckpoint, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Opens `path` and loads every tensor: success or a dsq::Error are both fine, anything else
// (another exception type, a crash, a sanitizer report) is a bug.
void open_and_load(const std::string& path) {
  try {
    const WeightStore ws = open_model(path);
    for (const auto& n : ws.names()) ws.get(n);
  } catch (const Error&) {
  }
}

// Truncation at every byte of the headers and at a stride through the data.
void truncation_sweep(const std::string& bytes, const std::string& path, size_t header_end) {
  for (size_t n = 0; n < bytes.size(); n += n < header_end ? 1 : 509) {
    write_file(path, bytes.substr(0, n));
    ASSERT_NO_FATAL_FAILURE(open_and_load(path)) << n;
  }
}

// Random byte mutations in the first `span` bytes (deterministic seed).
void mutation_sweep(const std::string& bytes, const std::string& path, size_t span, int rounds) {
  std::mt19937 rng(12345);
  for (int r = 0; r < rounds; ++r) {
    std::string s = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      const size_t at = rng() % std::min(span, s.size());
      s[at] = static_cast<char>(rng() % 3 == 0 ? 0xFF : rng());
    }
    write_file(path, s);
    ASSERT_NO_FATAL_FAILURE(open_and_load(path)) << r;
  }
}

TEST(CorruptSweep, GgufTruncationAndMutation) {
  testing::TempDir tmp;
  GgufBuilder b = base_gguf();
  const std::string s = b.build();
  truncation_sweep(s, tmp.file("m.gguf"), b.marks.at("data"));
  mutation_sweep(s, tmp.file("m.gguf"), b.marks.at("data"), 600);
}

TEST(CorruptSweep, SafetensorsTruncationAndMutation) {
  testing::TempDir tmp;
  write_file(tmp.file("config.json"), hf_config(cfg()).dump());
  std::string data;
  const std::string header = st_header(st_tensors(), &data).dump();
  const std::string s = st_file(header, data);
  truncation_sweep(s, tmp.file("model.safetensors"), header.size() + 16);
  mutation_sweep(s, tmp.file("model.safetensors"), header.size() + 8, 600);
}

TEST(CorruptSweep, Llama2cTruncationAndMutation) {
  testing::TempDir tmp;
  for (int version : {0, 1}) {
    const std::string s = llama2c_file(cfg(), weights(), version);
    truncation_sweep(s, tmp.file("m.bin"), 300);
    mutation_sweep(s, tmp.file("m.bin"), version ? 64 : 28, 300);
  }
}

}  // namespace
}  // namespace dsq::formats
