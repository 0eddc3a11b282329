// SentencePiece BPE, re-implemented to give the same ids as sentencepiece's bpe_model.cc and
// SentencePieceProcessor::Encode:
//  1. normalize: drop leading spaces, collapse runs of spaces and drop trailing ones
//     (remove_extra_whitespaces), prepend the dummy "▁" (add_dummy_prefix), replace ' ' by "▁"
//     (escape_whitespaces); malformed UTF-8 bytes become U+FFFD;
//  2. split into UTF-8 characters (user-defined pieces are single, frozen symbols);
//  3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
//     (ties: leftmost), with a priority queue of candidate pairs;
//  4. unused pieces are split back into the pair they came from; unknown symbols become
//     <0xNN> byte pieces (byte_fallback) or one unk id per run.
#include "lib/text/tokenizer_spm.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>
#include <string>
#include <unordered_map>

#include "lib/text/tokenizer_special.h"
#include "lib/text/unicode.h"
#include "lib/core/error.h"

namespace dsq::text {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

// ---- protobuf wire format ------------------------------------------------------------------

class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, const std::string& path, const char* what)
      : p_(bytes), path_(path), what_(what) {}
  bool done() const { return pos_ >= p_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= p_.size()) fail("truncated varint");
      const auto b = static_cast<uint8_t>(p_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  // Reads a field key; returns the field number and stores the wire type.
  uint32_t key(uint32_t* wire) {
    const uint64_t k = varint();
    *wire = static_cast<uint32_t>(k & 7);
    if ((k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF) fail("bad field number");
    return static_cast<uint32_t>(k >> 3);
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > p_.size() - pos_)
      fail(strprintf("length-delimited field of %llu bytes with %zu left",
                     static_cast<unsigned long long>(n), p_.size() - pos_));
    const std::string_view s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float f32() {
    if (p_.size() - pos_ < 4) fail("truncated fixed32");
    uint32_t u = 0;
    for (int k = 0; k < 4; ++k)
      u |= static_cast<uint32_t>(static_cast<uint8_t>(p_[pos_ + k])) << (8 * k);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        advance(8);
        break;
      case 2:
        bytes();
        break;
      case 5:
        advance(4);
        break;
      default:
        fail(strprintf("unsupported wire type %u", wire));
    }
  }
  [[noreturn]] void fail(const std::string& msg) const {
    throw FormatError(strprintf("'%s': not a valid sentencepiece model: %s: %s at byte %zu",
                                path_.c_str(), what_, msg.c_str(), pos_));
  }

 private:
  void advance(size_t n) {
    if (p_.size() - pos_ < n) fail("truncated field");
    pos_ += n;
  }
  std::string_view p_;
  size_t pos_ = 0;
  const std::string& path_;
  const char* what_;
};

void expect_wire(ProtoReader& r, uint32_t wire, uint32_t want, const char* field) {
  if (wire != want)
    r.fail(strprintf("field '%s' has wire type %u, expected %u", field, wire, want));
}

// A bool field (varint wire type).
bool read_bool(ProtoReader& r, uint32_t wire, const char* field) {
  expect_wire(r, wire, 0, field);
  return r.varint() != 0;
}

SpmPiece parse_piece(std::string_view bytes, const std::string& path) {
  ProtoReader r(bytes, path, "piece");
  SpmPiece piece;
  while (!r.done()) {
    uint32_t wire = 0;
    switch (r.key(&wire)) {
      case 1:
        expect_wire(r, wire, 2, "piece");
        piece.text = std::string(r.bytes());
        break;
      case 2:
        expect_wire(r, wire, 5, "score");
        piece.score = r.f32();
        break;
      case 3: {
        expect_wire(r, wire, 0, "type");
        const uint64_t t = r.varint();
        if (t < 1 || t > 6)
          r.fail(strprintf("unknown piece type %llu", static_cast<unsigned long long>(t)));
        piece.type = static_cast<SpmPieceType>(t);
        break;
      }
      default:
        r.skip(wire);
    }
  }
  return piece;
}

// TrainerSpec: model_type (3), byte_fallback (35), unk_surface (44).
void parse_trainer_spec(std::string_view bytes, const std::string& path, SpmModel* m,
                        uint64_t* model_type) {
  ProtoReader r(bytes, path, "trainer_spec");
  while (!r.done()) {
    uint32_t wire = 0;
    switch (r.key(&wire)) {
      case 3:
        expect_wire(r, wire, 0, "model_type");
        *model_type = r.varint();
        break;
      case 24:
        m->treat_whitespace_as_suffix = read_bool(r, wire, "treat_whitespace_as_suffix");
        break;
      case 35:
        m->byte_fallback = read_bool(r, wire, "byte_fallback");
        break;
      case 44:
        expect_wire(r, wire, 2, "unk_surface");
        m->unk_surface = std::string(r.bytes());
        break;
      default:
        r.skip(wire);
    }
  }
}

// NormalizerSpec: name (1), precompiled_charsmap (2), add_dummy_prefix (3),
// remove_extra_whitespaces (4), escape_whitespaces (5).
void parse_normalizer_spec(std::string_view bytes, const std::string& path, SpmModel* m) {
  ProtoReader r(bytes, path, "normalizer_spec");
  while (!r.done()) {
    uint32_t wire = 0;
    switch (r.key(&wire)) {
      case 2:
        expect_wire(r, wire, 2, "precompiled_charsmap");
        m->precompiled_charsmap = std::string(r.bytes());
        break;
      case 3:
        m->add_dummy_prefix = read_bool(r, wire, "add_dummy_prefix");
        break;
      case 4:
        m->remove_extra_whitespaces = read_bool(r, wire, "remove_extra_whitespaces");
        break;
      case 5:
        m->escape_whitespaces = read_bool(r, wire, "escape_whitespaces");
        break;
      default:
        r.skip(wire);
    }
  }
}

// ---- the tokenizer -------------------------------------------------------------------------

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PieceMap = std::unordered_map<std::string_view, int32_t, StringViewHash>;

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmModel model) : m_(std::move(model)) {
    if (!m_.precompiled_charsmap.empty())
      throw ConfigError("'" + m_.source +
                        "': sentencepiece normalizer with a precompiled charsmap (e.g. nmt_nfkc) "
                        "is not supported; only the identity normalizer is");
    std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
    const auto& pieces = m_.pieces;
    if (pieces.empty()) throw FormatError("'" + m_.source + "': the vocabulary has no pieces");
    if (pieces.size() > static_cast<size_t>(INT32_MAX))
      throw FormatError("'" + m_.source + "': too many pieces");
    for (size_t i = 0; i < pieces.size(); ++i) {
      const SpmPiece& p = pieces[i];
      const auto id = static_cast<int32_t>(i);
      if (p.text.empty())
        throw FormatError(strprintf("'%s': piece %zu is empty", m_.source.c_str(), i));
      if (!all_.emplace(p.text, id).second)
        throw FormatError("'" + m_.source + "': duplicate piece '" + p.text + "'");
      const bool mergeable = p.type == SpmPieceType::kNormal ||
                             p.type == SpmPieceType::kUserDefined ||
                             p.type == SpmPieceType::kUnused;
      // llama.cpp merges through every token of the vocabulary.
      if (mergeable || !m_.sentencepiece_mode) mergeable_.emplace(p.text, id);
      if (p.type == SpmPieceType::kUnknown && unk_id_ < 0) unk_id_ = id;
      if (p.type == SpmPieceType::kUserDefined) {
        if (m_.sentencepiece_mode)
          user_defined_.add(p.text, id);
        else
          special_.add(p.text, id);
      }
      if (p.type == SpmPieceType::kControl && !m_.sentencepiece_mode) special_.add(p.text, id);
      if (p.type == SpmPieceType::kByte) {
        // Parsed by hand: sscanf's %X would accept a sign ("<0x-4>") and index out of range.
        auto hex = [](char c) {
          return c >= '0' && c <= '9' ? c - '0'
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : -1;
        };
        const std::string& t = p.text;
        if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>' || hex(t[3]) < 0 ||
            hex(t[4]) < 0)
          throw FormatError("'" + m_.source + "': byte piece '" + p.text + "' is not <0xNN>");
        byte_ids_[hex(t[3]) * 16 + hex(t[4])] = id;
      }
    }
    if (unk_id_ < 0) throw FormatError("'" + m_.source + "': the vocabulary has no unknown piece");
    split_at_spaces_ = user_defined_.empty();
    for (const auto& [text, id] : mergeable_)
      if (text.find(kSpaceSymbol, 1) != std::string_view::npos) split_at_spaces_ = false;
    if (m_.byte_fallback) {
      for (int b = 0; b < 256; ++b)
        if (byte_ids_[b] < 0)
          throw FormatError(strprintf("'%s': byte_fallback is set but piece <0x%02X> is missing",
                                      m_.source.c_str(), b));
    }
    bos_id_ = m_.bos_id == -2 ? find_control("<s>") : m_.bos_id;
    eos_id_ = m_.eos_id == -2 ? find_control("</s>") : m_.eos_id;
    adds_bos_ = m_.add_bos;
    for (const int32_t id : {bos_id_, eos_id_})
      if (id < -1 || id >= static_cast<int32_t>(pieces.size()))
        throw FormatError(
            strprintf("'%s': bos/eos id %d is outside the vocabulary", m_.source.c_str(), id));
    vocab_size_ = pieces.size();
    source_ = m_.source;
    description_ =
        strprintf("sentencepiece bpe, %zu pieces ('%s')", pieces.size(), m_.source.c_str());
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
    if (m_.sentencepiece_mode) {
      encode_normalized(normalize(text), &out);
      return out;
    }
    // llama.cpp: special tokens first; a fragment gets the dummy prefix when it starts the text
    // or follows a special token.
    bool prev_special = true;
    special_.split(
        text,
        [&](std::string_view frag) {
          std::string s;
          if (m_.add_dummy_prefix && prev_special) s = kSpaceSymbol;
          append_escaped(frag, &s);
          encode_normalized(s, &out);
          prev_special = false;
        },
        [&](int32_t id) {
          out.push_back(id);
          prev_special = true;
        });
    return out;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    bool first = true;
    for (const int32_t id : ids) {
      check_id(id);
      const SpmPiece& p = m_.pieces[static_cast<size_t>(id)];
      switch (p.type) {
        case SpmPieceType::kControl:
          continue;
        case SpmPieceType::kUnknown:
          out += m_.unk_surface;
          break;
        case SpmPieceType::kByte:
          out += static_cast<char>(std::stoi(p.text.substr(3, 2), nullptr, 16));
          break;
        default: {
          std::string_view t = p.text;
          // The dummy prefix added by encode is not part of the text.
          if (first && m_.add_dummy_prefix && t.substr(0, kSpaceSymbol.size()) == kSpaceSymbol)
            t.remove_prefix(kSpaceSymbol.size());
          for (size_t i = 0; i < t.size();) {
            if (t.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
              out += ' ';
              i += kSpaceSymbol.size();
            } else {
              out += t[i++];
            }
          }
        }
      }
      first = false;
    }
    return out;
  }

  std::string token_text(int32_t id) const override {
    check_id(id);
    return m_.pieces[static_cast<size_t>(id)].text;
  }

 private:
  int32_t find_control(std::string_view text) const {
    const auto it = all_.find(text);
    return it == all_.end() ? -1 : it->second;
  }

  void append_escaped(std::string_view s, std::string* out) const {
    for (const char c : s) {
      if (c == ' ' && m_.escape_whitespaces)
        out->append(kSpaceSymbol);
      else
        *out += c;
    }
  }

  // SentencePiece's Normalizer::Normalize for the identity normalizer.
  std::string normalize(std::string_view in) const {
    std::string out;
    if (in.empty()) return out;
    out.reserve(in.size() + in.size() / 4 + 4);
    const std::string_view space = m_.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    size_t i = 0;
    if (m_.remove_extra_whitespaces)
      while (i < in.size() && in[i] == ' ') ++i;
    if (m_.add_dummy_prefix && !m_.treat_whitespace_as_suffix) out.append(space);
    bool prev_space = m_.remove_extra_whitespaces;
    while (i < in.size()) {
      // User-defined pieces pass through unnormalized.
      size_t len = user_defined_.empty() ? 0 : user_defined_prefix(in.substr(i));
      if (len > 0) {
        out.append(in.substr(i, len));
        i += len;
        prev_space = false;
        continue;
      }
      const char32_t cp = utf8_decode(in, i, &len);
      if (cp == kInvalidCodepoint) {
        out.append("\xEF\xBF\xBD");  // U+FFFD for one malformed byte
        prev_space = false;
      } else if (in[i] == ' ') {
        if (!prev_space) out.append(space);
        prev_space = m_.remove_extra_whitespaces;
      } else {
        out.append(in.substr(i, len));
        prev_space = false;
      }
      i += len;
    }
    if (m_.add_dummy_prefix && m_.treat_whitespace_as_suffix) out.append(space);
    if (m_.remove_extra_whitespaces)
      while (out.size() >= space.size() &&
             out.compare(out.size() - space.size(), space.size(), space) == 0)
        out.resize(out.size() - space.size());
    return out;
  }

  // Length of the longest user-defined piece at the start of s (0 if none).
  size_t user_defined_prefix(std::string_view s) const {
    int32_t id = -1;
    return user_defined_.match_prefix(s, &id);
  }

  struct Symbol {
    uint32_t begin = 0, len = 0;  // bytes in the normalized text; len 0 once merged away
    int32_t prev = -1, next = -1;
    bool frozen = false;
  };
  struct Pair {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Pair& o) const {  // priority_queue top = highest score, then leftmost
      return score < o.score || (score == o.score && left > o.left);
    }
  };

  // Encodes normalized text. When no piece can span a "▁" boundary (no mergeable piece has "▁"
  // after its first character and there are no user-defined pieces), the text is cut before each
  // "▁": merges never cross such a cut, and within a segment the merge order is unchanged, so
  // the ids are identical while repeated words come from a per-call cache.
  void encode_normalized(std::string_view s, std::vector<int32_t>* out) const {
    bool prev_unk = false;
    if (!split_at_spaces_) {
      merge_segment(s, out, &prev_unk);
      return;
    }
    WordIdCache cache;
    for (size_t start = 0; start < s.size();) {
      size_t end = s.find(kSpaceSymbol, start + 1);
      if (end == std::string_view::npos) end = s.size();
      const std::string_view word = s.substr(start, end - start);
      start = end;
      if (cache.replay(word, out)) continue;
      const size_t before = out->size();
      merge_segment(word, out, &prev_unk);
      // Runs of unknown ids depend on the previous word: cache only words without them.
      if (!prev_unk) cache.remember(word, before, *out);
    }
  }

  void merge_segment(std::string_view s, std::vector<int32_t>* out, bool* prev_unk) const {
    if (s.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      Symbol x;
      x.begin = static_cast<uint32_t>(i);
      size_t len =
          m_.sentencepiece_mode && !user_defined_.empty() ? user_defined_prefix(s.substr(i)) : 0;
      x.frozen = len > 0;
      if (len == 0) len = std::min(utf8_lead_length(static_cast<uint8_t>(s[i])), s.size() - i);
      x.len = static_cast<uint32_t>(len);
      x.prev = static_cast<int32_t>(sym.size()) - 1;
      i += len;
      x.next = i < s.size() ? static_cast<int32_t>(sym.size()) + 1 : -1;
      sym.push_back(x);
    }
    std::priority_queue<Pair> agenda;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>,
                       StringViewHash>
        rev_merge;
    auto piece_of = [&](const Symbol& x) { return s.substr(x.begin, x.len); };
    auto try_pair = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[l].frozen || sym[r].frozen) return;
      const std::string_view merged = s.substr(sym[l].begin, sym[l].len + sym[r].len);
      const auto it = mergeable_.find(merged);
      if (it == mergeable_.end()) return;
      const SpmPiece& p = m_.pieces[static_cast<size_t>(it->second)];
      agenda.push({p.score, l, r, static_cast<uint32_t>(merged.size())});
      if (p.type == SpmPieceType::kUnused) rev_merge[merged] = {piece_of(sym[l]), piece_of(sym[r])};
    };
    for (size_t i = 1; i < sym.size(); ++i)
      try_pair(static_cast<int32_t>(i) - 1, static_cast<int32_t>(i));
    while (!agenda.empty()) {
      const Pair top = agenda.top();
      agenda.pop();
      Symbol& l = sym[top.left];
      Symbol& r = sym[top.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;  // stale
      l.len += r.len;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = top.left;
      r.len = 0;
      try_pair(l.prev, top.left);
      try_pair(top.left, l.next);
    }
    for (int32_t i = 0; i >= 0 && static_cast<size_t>(i) < sym.size(); i = sym[i].next)
      emit(piece_of(sym[i]), rev_merge, out, prev_unk);
  }

  template <class RevMerge>
  void emit(std::string_view piece, const RevMerge& rev_merge, std::vector<int32_t>* out,
            bool* prev_unk) const {
    const auto it = all_.find(piece);
    if (it != all_.end()) {
      const SpmPieceType t = m_.pieces[static_cast<size_t>(it->second)].type;
      const bool resegment = m_.sentencepiece_mode && t == SpmPieceType::kUnused;
      if (!resegment) {
        *prev_unk = t == SpmPieceType::kUnknown;
        out->push_back(it->second);
        return;
      }
    }
    const auto rv = rev_merge.find(piece);
    if (rv != rev_merge.end()) {
      emit(rv->second.first, rev_merge, out, prev_unk);
      emit(rv->second.second, rev_merge, out, prev_unk);
      return;
    }
    if (m_.byte_fallback || !m_.sentencepiece_mode) {
      for (const char c : piece)
        out->push_back(byte_ids_[static_cast<uint8_t>(c)] >= 0 ? byte_ids_[static_cast<uint8_t>(c)]
                                                               : unk_id_);
      *prev_unk = false;
      return;
    }
    if (!*prev_unk) out->push_back(unk_id_);  // a run of unknown symbols is one unk
    *prev_unk = true;
  }

  SpmModel m_;
  PieceMap all_;                      // every piece
  PieceMap mergeable_;                // pieces BPE may produce
  SpecialTokenMatcher user_defined_;  // sentencepiece mode: kept whole, never merged
  SpecialTokenMatcher special_;       // llama.cpp mode: split out before BPE
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256] = {};
  bool split_at_spaces_ = false;
};

}  // namespace

SpmModel parse_sentencepiece_model(std::string_view bytes, const std::string& path) {
  SpmModel m;
  m.source = path;
  uint64_t model_type = 1;  // UNIGRAM is the proto default
  ProtoReader r(bytes, path, "ModelProto");
  bool have_trainer = false;
  while (!r.done()) {
    uint32_t wire = 0;
    switch (r.key(&wire)) {
      case 1:
        expect_wire(r, wire, 2, "pieces");
        m.pieces.push_back(parse_piece(r.bytes(), path));
        break;
      case 2:
        expect_wire(r, wire, 2, "trainer_spec");
        parse_trainer_spec(r.bytes(), path, &m, &model_type);
        have_trainer = true;
        break;
      case 3:
        expect_wire(r, wire, 2, "normalizer_spec");
        parse_normalizer_spec(r.bytes(), path, &m);
        break;
      default:
        r.skip(wire);
    }
  }
  if (m.pieces.empty()) r.fail("no pieces");
  if (!have_trainer) r.fail("no trainer_spec");
  if (model_type != 2) {
    static const char* kNames[] = {"?", "unigram", "bpe", "word", "char"};
    throw ConfigError(strprintf("'%s': sentencepiece model type %s is not supported (only bpe)",
                                path.c_str(), model_type < 5 ? kNames[model_type] : "unknown"));
  }
  return m;
}

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmModel model) {
  return std::make_unique<SpmTokenizer>(std::move(model));
}

}  // namespace dsq::text
