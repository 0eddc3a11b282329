// dsq_reader_standalone.h: a dependency-free reader of .dsq files for runtimes.
//
// Header-only C++17, standard library only; copy this one file into a runtime. It follows
// docs/FORMAT.md (format version 1.x): it validates the preamble, the binary tensor table and
// the index checksum, parses the JSON header with a small built-in parser, reads and verifies
// uncompressed tensors (XXH64), decodes embedded base64 files, and computes the kQInt layout.
// zstd-compressed tensors are listed but read() refuses them with a clear error (link zstd and
// use data_offset/stored_bytes to decompress them yourself). Errors throw dsq_standalone::Error.
//
//   dsq_standalone::Reader r("model.dsq");
//   for (const auto& t : r.tensors()) { auto bytes = r.read(t); ... }
//   int64_t n_layers = r.header()["config"]["n_layers"].as_int();
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dsq_standalone {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};

// ---------------------------------------------------------------------------------------------
// Element types (the DType numbers of FORMAT.md).
enum DType : uint16_t {
  F32 = 0, F16 = 1, BF16 = 2, I8 = 3, U8 = 4, I32 = 5, U32 = 6, I64 = 7, F64 = 8, QINT = 16
};
inline const char* dtype_name(uint16_t d) {
  static const char* const names[] = {"f32", "f16", "bf16", "i8", "u8", "i32", "u32", "i64", "f64"};
  if (d < 9) return names[d];
  return d == QINT ? "qint" : nullptr;
}
inline uint64_t dtype_bytes(uint16_t d) {  // 0 for qint and unknown types
  static const uint8_t sizes[] = {4, 2, 2, 1, 1, 4, 4, 8, 8};
  return d < 9 ? sizes[d] : 0;
}

// kQInt layout (FORMAT.md "Quantized tensors"): codes, then f16 scales, then u8 zeros (asym),
// each section starting at a multiple of 64 bytes from the tensor start.
struct QIntLayout {
  uint64_t group = 0, n_groups = 0, row_code_bytes = 0;
  uint64_t codes_offset = 0, codes_bytes = 0, scales_offset = 0, scales_bytes = 0;
  uint64_t zeros_offset = 0, zeros_bytes = 0, total_bytes = 0;
};
inline QIntLayout qint_layout(unsigned bits, uint64_t group, bool sym, uint64_t rows, uint64_t cols) {
  auto round64 = [](uint64_t v) { return (v + 63) / 64 * 64; };
  QIntLayout q;
  q.group = group ? group : cols;
  q.n_groups = cols ? (cols + q.group - 1) / q.group : 0;
  q.row_code_bytes = (cols * bits + 7) / 8;
  q.codes_bytes = rows * q.row_code_bytes;
  q.scales_offset = round64(q.codes_bytes);
  q.scales_bytes = 2 * rows * q.n_groups;
  q.zeros_offset = round64(q.scales_offset + q.scales_bytes);
  q.zeros_bytes = sym ? 0 : rows * q.n_groups;
  q.total_bytes = sym ? q.scales_offset + q.scales_bytes : q.zeros_offset + q.zeros_bytes;
  return q;
}

// ---------------------------------------------------------------------------------------------
// XXH64 (seed 0 for dsq checksums), a plain transcription of the xxHash specification.
inline uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0) {
  const uint64_t P[5] = {11400714785074694791ull, 14029467366897019727ull, 1609587929392839161ull,
                         9650029242287828579ull, 2870177450012600261ull};
  auto rot = [](uint64_t v, unsigned s) { return (v << s) | (v >> (64u - s)); };
  auto rd64 = [](const unsigned char* s) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | s[i];
    return v;
  };
  auto mix = [&](uint64_t a, uint64_t lane) { return rot(a + lane * P[1], 31) * P[0]; };
  const unsigned char* s = static_cast<const unsigned char*>(data);
  size_t left = len;
  uint64_t acc;
  if (left >= 32) {
    uint64_t lanes[4] = {seed + P[0] + P[1], seed + P[1], seed, seed - P[0]};
    while (left >= 32) {
      for (int k = 0; k < 4; ++k) lanes[k] = mix(lanes[k], rd64(s + 8 * k));
      s += 32;
      left -= 32;
    }
    acc = rot(lanes[0], 1) + rot(lanes[1], 7) + rot(lanes[2], 12) + rot(lanes[3], 18);
    for (int k = 0; k < 4; ++k) acc = (acc ^ mix(0, lanes[k])) * P[0] + P[3];
  } else {
    acc = seed + P[4];
  }
  acc += len;
  while (left >= 8) {
    acc = rot(acc ^ mix(0, rd64(s)), 27) * P[0] + P[3];
    s += 8;
    left -= 8;
  }
  if (left >= 4) {
    const uint64_t w = uint64_t(s[0]) | uint64_t(s[1]) << 8 | uint64_t(s[2]) << 16 | uint64_t(s[3]) << 24;
    acc = rot(acc ^ (w * P[0]), 23) * P[1] + P[2];
    s += 4;
    left -= 4;
  }
  for (; left > 0; --left, ++s) acc = rot(acc ^ (*s * P[4]), 11) * P[0];
  acc = (acc ^ (acc >> 33)) * P[1];
  acc = (acc ^ (acc >> 29)) * P[2];
  return acc ^ (acc >> 32);
}

// Base64 (RFC 4648, padded) as used for embedded tokenizer files.
inline std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  if (in.size() % 4) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  std::string out;
  uint32_t bitbuf = 0;
  int nbits = 0;
  for (size_t i = 0; i + pad < in.size(); ++i) {
    const int v = val(in[i]);
    if (v < 0) return std::nullopt;
    bitbuf = (bitbuf << 6) | uint32_t(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(char((bitbuf >> nbits) & 0xff));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A minimal JSON value and parser (RFC 8259; numbers kept as double plus exact int64 when the
// text is an integer). Enough for the dsq JSON header.
class Json {
 public:
  enum Kind { Null, Bool, Number, String, Array, Object };
  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Null; }
  bool as_bool() const { need(Bool); return b_; }
  double as_double() const { need(Number); return d_; }
  int64_t as_int() const {
    need(Number);
    if (!is_int_) throw Error("json: number is not an integer");
    return i_;
  }
  const std::string& as_string() const { need(String); return s_; }
  const std::vector<Json>& items() const { need(Array); return a_; }
  const std::vector<std::pair<std::string, Json>>& members() const { need(Object); return o_; }
  bool contains(const std::string& k) const { return find(k) != nullptr; }
  const Json* find(const std::string& k) const {
    if (kind_ != Object) return nullptr;
    for (const auto& kv : o_)
      if (kv.first == k) return &kv.second;
    return nullptr;
  }
  // Missing keys and non-objects give a shared null value, so lookups chain safely.
  const Json& operator[](const std::string& k) const {
    static const Json null_value;
    const Json* v = find(k);
    return v ? *v : null_value;
  }
  static Json parse(std::string_view text) {
    Parser p{text, 0};
    Json v = p.value(0);
    p.ws();
    if (p.i != text.size()) p.fail("trailing characters");
    return v;
  }

 private:
  void need(Kind k) const {
    if (kind_ != k) throw Error("json: value has the wrong type");
  }
  struct Parser {
    std::string_view t;
    size_t i;
    [[noreturn]] void fail(const char* what) const {
      throw Error(std::string("json: ") + what + " at offset " + std::to_string(i));
    }
    void ws() {
      while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) ++i;
    }
    bool eat(char c) {
      ws();
      if (i < t.size() && t[i] == c) return ++i, true;
      return false;
    }
    bool word(std::string_view w) {
      if (t.substr(i, w.size()) != w) return false;
      i += w.size();
      return true;
    }
    Json value(int depth) {
      if (depth > 256) fail("nesting too deep");
      ws();
      if (i >= t.size()) fail("unexpected end");
      Json v;
      const char c = t[i];
      if (c == '{') {
        ++i;
        v.kind_ = Object;
        if (eat('}')) return v;
        do {
          ws();
          if (i >= t.size() || t[i] != '"') fail("expected a key");
          std::string k = str();
          if (!eat(':')) fail("expected ':'");
          v.o_.emplace_back(std::move(k), value(depth + 1));
        } while (eat(','));
        if (!eat('}')) fail("expected '}'");
      } else if (c == '[') {
        ++i;
        v.kind_ = Array;
        if (eat(']')) return v;
        do v.a_.push_back(value(depth + 1));
        while (eat(','));
        if (!eat(']')) fail("expected ']'");
      } else if (c == '"') {
        v.kind_ = String;
        v.s_ = str();
      } else if (word("true") || word("false")) {
        v.kind_ = Bool;
        v.b_ = t[i - 1] == 'e' && t[i - 2] == 'u';
      } else if (word("null")) {
      } else {
        num(v);
      }
      return v;
    }
    void num(Json& v) {
      const size_t start = i;
      bool integer = true;
      if (i < t.size() && t[i] == '-') ++i;
      while (i < t.size() && ((t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == 'e' ||
                              t[i] == 'E' || t[i] == '+' || t[i] == '-')) {
        if (t[i] == '.' || t[i] == 'e' || t[i] == 'E') integer = false;
        ++i;
      }
      const char* b = t.data() + start;
      const char* e = t.data() + i;
      if (b == e) fail("unexpected character");
      v.kind_ = Number;
      if (std::from_chars(b, e, v.d_).ptr != e) fail("bad number");
      if (integer && std::from_chars(b, e, v.i_).ptr == e) v.is_int_ = true;
    }
    unsigned hex4() {
      if (i + 4 > t.size()) fail("bad \\u escape");
      unsigned u = 0;
      for (int k = 0; k < 4; ++k) {
        const char c = t[i++];
        u <<= 4;
        if (c >= '0' && c <= '9') u |= unsigned(c - '0');
        else if (c >= 'a' && c <= 'f') u |= unsigned(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') u |= unsigned(c - 'A' + 10);
        else fail("bad \\u escape");
      }
      return u;
    }
    std::string str() {
      ++i;  // opening quote
      std::string out;
      while (true) {
        if (i >= t.size()) fail("unterminated string");
        const char c = t[i++];
        if (c == '"') return out;
        if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
        if (c != '\\') {
          out.push_back(c);
          continue;
        }
        if (i >= t.size()) fail("unterminated string");
        const char e = t[i++];
        switch (e) {
          case '"': case '\\': case '/': out.push_back(e); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xD800 && cp < 0xDC00 && word("\\u")) {
              const unsigned lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf8(out, cp);
            break;
          }
          default: fail("bad escape");
        }
      }
    }
    static void utf8(std::string& o, unsigned cp) {
      if (cp < 0x80) {
        o.push_back(char(cp));
      } else if (cp < 0x800) {
        o.push_back(char(0xC0 | (cp >> 6)));
        o.push_back(char(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        o.push_back(char(0xE0 | (cp >> 12)));
        o.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        o.push_back(char(0x80 | (cp & 0x3F)));
      } else {
        o.push_back(char(0xF0 | (cp >> 18)));
        o.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        o.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        o.push_back(char(0x80 | (cp & 0x3F)));
      }
    }
  };
  Kind kind_ = Null;
  bool b_ = false, is_int_ = false;
  double d_ = 0;
  int64_t i_ = 0;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

// ---------------------------------------------------------------------------------------------
struct TensorInfo {
  std::string name;
  uint16_t dtype = 0;            // DType
  std::vector<int64_t> shape;    // row-major, outermost first
  uint8_t compression = 0;       // 0 none, 1 zstd
  uint64_t data_offset = 0;      // absolute file offset (multiple of 64)
  uint64_t stored_bytes = 0;     // on disk
  uint64_t raw_bytes = 0;        // decompressed
  uint64_t checksum = 0;         // XXH64 of the raw bytes
  unsigned quant_bits = 0;       // QINT only
  uint32_t quant_group = 0;      // QINT only; 0 = one group per row
  bool quant_sym = false;        // QINT only
  uint16_t quant_scheme = 0;     // QINT only (format 1.1): the scheme id of docs/FORMAT.md
};

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    file_.open(path, std::ios::binary);
    if (!file_) fail("cannot open");
    file_.seekg(0, std::ios::end);
    const uint64_t size = static_cast<uint64_t>(file_.tellg());
    if (size < 64) fail("truncated: shorter than the 64-byte preamble");
    unsigned char pre[64];
    read_at(0, pre, 64);
    if (std::memcmp(pre, "DSQMODEL", 8) != 0) fail("bad magic, not a dsq file");
    version_major_ = u16(pre + 8);
    version_minor_ = u16(pre + 10);
    if (version_major_ != 1)
      fail("unsupported format version " + std::to_string(version_major_) + "." +
           std::to_string(version_minor_));
    if (u64(pre + 16) != size) fail("truncated or trailing bytes: preamble size disagrees");
    const uint64_t index_offset = u64(pre + 24), index_bytes = u64(pre + 32);
    if (index_offset < 64 || index_offset % 64 || index_offset > size ||
        index_bytes > size - index_offset || index_bytes < 32)
      fail("index lies outside the file");
    std::vector<unsigned char> idx(index_bytes);
    read_at(index_offset, idx.data(), index_bytes);
    if (xxh64(idx.data(), idx.size()) != u64(pre + 40)) fail("index checksum mismatch");
    if (std::memcmp(idx.data(), "DSQI", 4) != 0) fail("bad index magic");
    const uint64_t n = u32(&idx[4]), names_bytes = u64(&idx[8]), json_bytes = u64(&idx[16]);
    const uint64_t body = index_bytes - 32;
    if (n * 128 > body || names_bytes > body - n * 128 || json_bytes != body - n * 128 - names_bytes)
      fail("index sizes disagree");
    const unsigned char* names = idx.data() + 32 + n * 128;
    for (uint64_t k = 0; k < n; ++k) {
      tensors_.push_back(parse_record(idx.data() + 32 + k * 128, names, names_bytes, index_offset));
      if (!by_name_.emplace(tensors_.back().name, k).second)
        fail("duplicate tensor '" + tensors_.back().name + "'");
    }
    std::vector<const TensorInfo*> sorted;
    for (const auto& t : tensors_) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->data_offset < b->data_offset; });
    for (size_t k = 1; k < sorted.size(); ++k)
      if (sorted[k - 1]->stored_bytes && sorted[k]->stored_bytes &&
          sorted[k - 1]->data_offset + sorted[k - 1]->stored_bytes > sorted[k]->data_offset)
        fail("tensor '" + sorted[k]->name + "' overlaps tensor '" + sorted[k - 1]->name + "'");
    json_text_.assign(reinterpret_cast<const char*>(names + names_bytes), json_bytes);
    try {
      header_ = Json::parse(json_text_);
    } catch (const Error& e) {
      fail(std::string("JSON header: ") + e.what());
    }
    if (header_.kind() != Json::Object) fail("JSON header is not an object");
  }

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  const Json& header() const { return header_; }
  const std::string& header_text() const { return json_text_; }
  uint16_t version_major() const { return version_major_; }
  uint16_t version_minor() const { return version_minor_; }

  // The tensor's raw bytes (checksum verified unless verify is false). Throws for zstd tensors.
  std::vector<unsigned char> read(const TensorInfo& t, bool verify = true) {
    if (t.compression != 0)
      fail("tensor '" + t.name + "' is zstd-compressed; this reader does not decompress " +
           "(bytes [" + std::to_string(t.data_offset) + ", +" + std::to_string(t.stored_bytes) +
           ") hold one zstd frame)");
    std::vector<unsigned char> out(t.raw_bytes);
    read_at(t.data_offset, out.data(), t.raw_bytes);
    if (verify && xxh64(out.data(), out.size()) != t.checksum)
      fail("tensor '" + t.name + "': checksum mismatch");
    return out;
  }

  // An embedded file of the JSON header's tokenizer.files (nullopt when absent).
  std::optional<std::string> embedded_file(const std::string& name) const {
    const Json& f = header_["tokenizer"]["files"][name];
    if (f.is_null()) return std::nullopt;
    auto bytes = base64_decode(f["base64"].as_string());
    if (!bytes) fail("embedded file '" + name + "': bad base64");
    return bytes;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("'" + path_ + "': " + what);
  }
  static uint16_t u16(const unsigned char* p) { return uint16_t(p[0] | p[1] << 8); }
  static uint32_t u32(const unsigned char* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  }
  static uint64_t u64(const unsigned char* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }
  void read_at(uint64_t off, void* dst, uint64_t n) {
    file_.clear();
    file_.seekg(static_cast<std::streamoff>(off));
    file_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!file_ || static_cast<uint64_t>(file_.gcount()) != n) fail("read failed");
  }

  TensorInfo parse_record(const unsigned char* r, const unsigned char* names, uint64_t names_bytes,
                          uint64_t data_end) const {
    TensorInfo t;
    const uint64_t name_off = u64(r), name_len = u32(r + 8);
    if (name_len == 0 || name_off > names_bytes || name_len > names_bytes - name_off)
      fail("tensor name outside the name pool");
    t.name.assign(reinterpret_cast<const char*>(names + name_off), name_len);
    const std::string tw = "tensor '" + t.name + "': ";
    t.dtype = u16(r + 12);
    const unsigned ndim = r[14];
    t.compression = r[15];
    if (!dtype_name(t.dtype)) fail(tw + "unknown dtype " + std::to_string(t.dtype));
    if (ndim > 8) fail(tw + "more than 8 dims");
    if (t.compression > 1) fail(tw + "unknown compression " + std::to_string(t.compression));
    // Element count, refusing anything past 2^62.
    uint64_t numel = 1;
    for (unsigned d = 0; d < 8; ++d) {
      const int64_t v = static_cast<int64_t>(u64(r + 16 + 8 * d));
      if (d >= ndim) {
        if (v != 0) fail(tw + "unused dim is not 0");
        continue;
      }
      if (v < 0) fail(tw + "negative dim");
      t.shape.push_back(v);
      if (v != 0 && numel > (uint64_t(1) << 62) / static_cast<uint64_t>(v))
        fail(tw + "shape overflows");
      numel *= static_cast<uint64_t>(v);
    }
    t.data_offset = u64(r + 80);
    t.stored_bytes = u64(r + 88);
    t.raw_bytes = u64(r + 96);
    t.checksum = u64(r + 104);
    t.quant_bits = r[112];
    t.quant_sym = r[113] != 0;
    t.quant_group = u32(r + 116);
    t.quant_scheme = u16(r + 114);
    uint64_t want;
    if (t.dtype == QINT) {
      // This reader knows the grouped-integer schemes (ids 0..7: int8/4/3/2, sym = even id; 9:
      // int4_asymf, whose blob and arithmetic are int4_asym's; 10..13: int5/6, sym = even id); a
      // scheme of another layout (8, block FP8) has quant_bits 0 and is refused below.
      static const int kSchemeBits[14] = {8, 8, 4, 4, 3, 3, 2, 2, -1, 4, 5, 5, 6, 6};
      static const int kSchemeSym[14] = {1, 0, 1, 0, 1, 0, 1, 0, -1, 0, 1, 0, 1, 0};
      if (version_minor_ == 0 && t.quant_scheme != 0) fail(tw + "reserved field is not 0");
      if (version_minor_ >= 1 && (t.quant_scheme > 13 || kSchemeBits[t.quant_scheme] < 0 ||
                                  kSchemeSym[t.quant_scheme] != int(t.quant_sym) ||
                                  int(t.quant_bits) != kSchemeBits[t.quant_scheme]))
        fail(tw + "quantization scheme " + std::to_string(t.quant_scheme) + " is not supported");
      if (ndim != 2 || t.quant_bits < 2 || t.quant_bits > 8 || t.quant_bits == 7 ||
          r[113] > 1 || t.shape[1] > (int64_t(1) << 56))
        fail(tw + "bad qint description");
      want = qint_layout(t.quant_bits, t.quant_group, t.quant_sym, uint64_t(t.shape[0]),
                         uint64_t(t.shape[1])).total_bytes;
    } else {
      if (t.quant_bits || r[113] || t.quant_group || t.quant_scheme)
        fail(tw + "quantization fields set on a non-qint tensor");
      want = numel * dtype_bytes(t.dtype);
    }
    if (t.raw_bytes != want) fail(tw + "byte size does not match dtype and shape");
    if (t.compression == 0 && t.stored_bytes != t.raw_bytes) fail(tw + "stored size != raw size");
    if (t.data_offset % 64 || t.data_offset < 64 || t.data_offset > data_end ||
        t.stored_bytes > data_end - t.data_offset)
      fail(tw + "data offset out of range or misaligned");
    return t;
  }

  std::string path_;
  std::ifstream file_;
  uint16_t version_major_ = 0, version_minor_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::string json_text_;
  Json header_;
};

}  // namespace dsq_standalone
