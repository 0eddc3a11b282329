// Merge-ranked BPE as in Hugging Face `tokenizers` (models/bpe/word.rs) and llama.cpp:
//  1. special / added tokens are split out of the text literally (leftmost-longest);
//  2. each remaining fragment is pre-tokenized by the Split regexes in order (each regex splits
//     every piece produced by the previous one);
//  3. each piece's bytes are mapped to GPT-2's printable alphabet (byte-level) or kept as UTF-8
//     characters (byte_fallback), one symbol each;
//  4. the adjacent pair with the lowest merge rank is merged (ties: leftmost) until no pair has
//     a merge, using a priority queue of candidate pairs with lazy invalidation.
#include "lib/text/tokenizer_bpe.h"

#include <array>
#include <queue>
#include <unordered_map>

#include "lib/text/tokenizer_regex.h"
#include "lib/text/tokenizer_special.h"
#include "lib/text/unicode.h"
#include "lib/core/error.h"

namespace dsq::text {

const char kGpt2SplitPattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

namespace {

constexpr char kLlama3Pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr char kQwen2Pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM / Coder: the Split sequence of their tokenizer.json files. Non-ASCII code points
// are escaped: the originals include singletons (U+212A KELVIN SIGN, U+2126 OHM SIGN, ...) that
// an editor normalizing to NFC would silently change.
constexpr char kDeepseekLetters[] =
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}"
    "\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-"
    "\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-"
    "\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-"
    "\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-"
    "\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
    "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"
    "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-"
    "\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-"
    "\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+";
constexpr char kDeepseekPunct[] =
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+";
constexpr char kDeepseekCjk[] = "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeModel model) : m_(std::move(model)) {
    const auto fail = [&](const std::string& what) -> void {
      throw FormatError("'" + m_.source + "': " + what);
    };
    if (m_.tokens.empty()) fail("the vocabulary is empty");
    if (m_.kinds.size() != m_.tokens.size()) fail("token kinds do not match the token count");
    for (size_t i = 0; i < m_.tokens.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      if (m_.kinds[i] == BpeTokenKind::kNormal) {
        // The first occurrence wins, as in llama.cpp's token_to_id.
        ids_.emplace(m_.tokens[i], id);
      } else {
        special_.add(m_.tokens[i], id);
      }
    }
    merges_.reserve(m_.merges.size());
    for (size_t r = 0; r < m_.merges.size(); ++r) {
      const auto& [a, b] = m_.merges[r];
      const int32_t ia = find(a), ib = find(b), im = find(a + b);
      if (ia < 0 || ib < 0 || im < 0)
        fail(strprintf("merge %zu '%s %s' uses a token missing from the vocabulary", r, a.c_str(),
                       b.c_str()));
      merges_.insert(pair_key(ia, ib), Merge{static_cast<int32_t>(r), im});  // first rank wins
    }
    const auto b2u = bytes_to_unicode();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      if (m_.byte_level) {
        utf8_append(s, b2u[b]);
        u2b_.emplace(b2u[b], static_cast<uint8_t>(b));
      } else {
        s = strprintf("<0x%02X>", b);
      }
      // May be -1: byte-level vocabularies often lack bytes that never occur in UTF-8 (C0, C1,
      // F5..FF); such bytes encode as the unknown token, or fail when there is none.
      byte_ids_[b] = find(s);
    }
    for (const BpeSplit& s : m_.splits) regexes_.push_back({SplitRegex(s.pattern), s.behavior});
    bos_id_ = m_.bos_id;
    eos_id_ = m_.eos_id;
    adds_bos_ = m_.add_bos;
    vocab_size_ = m_.tokens.size();
    source_ = m_.source;
    description_ = strprintf("%s bpe, %zu tokens, %zu merges ('%s')",
                             m_.byte_level ? "byte-level" : "character", m_.tokens.size(),
                             m_.merges.size(), m_.source.c_str());
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    std::vector<int32_t> out;
    if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
    special_.split(
        text, [&](std::string_view frag) { encode_fragment(frag, &out); },
        [&](int32_t id) { out.push_back(id); });
    return out;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (const int32_t id : ids) {
      check_id(id);
      const std::string& t = m_.tokens[static_cast<size_t>(id)];
      switch (m_.kinds[static_cast<size_t>(id)]) {
        case BpeTokenKind::kControl:
          break;
        case BpeTokenKind::kAdded:
          out += t;
          break;
        case BpeTokenKind::kNormal:
          append_decoded(t, &out);
          break;
      }
    }
    if (m_.prepend_space_symbol && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  std::string token_text(int32_t id) const override {
    check_id(id);
    return m_.tokens[static_cast<size_t>(id)];
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  int32_t find(std::string_view s) const {
    const auto it = ids_.find(s);
    return it == ids_.end() ? -1 : it->second;
  }

  void append_decoded(const std::string& t, std::string* out) const {
    if (m_.byte_level) {
      for (size_t i = 0; i < t.size();) {
        size_t len = 1;
        const char32_t cp = utf8_decode(t, i, &len);
        const auto it = u2b_.find(cp);
        if (it != u2b_.end())
          *out += static_cast<char>(it->second);
        else
          out->append(t, i, len);
        i += len;
      }
      return;
    }
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {  // byte fallback piece
      *out += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
      return;
    }
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
        *out += ' ';
        i += 3;
      } else {
        *out += t[i++];
      }
    }
  }

  // Normalization (character-level vocabularies), pre-tokenization, then BPE on each piece.
  void encode_fragment(std::string_view frag, std::vector<int32_t>* out) const {
    std::string nfc, prefixed, normalized;
    if (m_.nfc) {
      nfc = unicode_nfc(frag);
      frag = nfc;
    }
    if (m_.add_prefix_space && (frag.empty() || frag[0] != ' ')) {
      prefixed = " ";
      prefixed.append(frag);
      frag = prefixed;
    }
    if (m_.prepend_space_symbol || m_.replace_space_symbol) {
      // Like Hugging Face normalizers, this applies to every fragment between added tokens.
      if (m_.prepend_space_symbol) normalized = "\xE2\x96\x81";
      for (const char c : frag) {
        if (c == ' ' && m_.replace_space_symbol)
          normalized += "\xE2\x96\x81";
        else
          normalized += c;
      }
      frag = normalized;
    }
    if (regexes_.empty()) {
      encode_piece(frag, out);
      return;
    }
    const CodepointText cps = utf8_split(frag);
    // Pieces as code-point ranges, refined by each regex in turn.
    std::vector<std::pair<uint32_t, uint32_t>> pieces{{0, static_cast<uint32_t>(cps.cps.size())}};
    std::vector<std::pair<uint32_t, uint32_t>> next, matches;
    for (const auto& [re, behavior] : regexes_) {
      next.clear();
      for (const auto& [b, e] : pieces) {
        matches.clear();
        re.find_all(cps.cps.data() + b, e - b, &matches);
        split_piece(b, e, matches, behavior, &next);
      }
      pieces.swap(next);
    }
    WordIdCache cache;  // repeated pre-tokens (words) are merged once per call
    for (const auto& [b, e] : pieces) {
      const std::string_view piece = frag.substr(cps.offset[b], cps.offset[e] - cps.offset[b]);
      if (cache.replay(piece, out)) continue;
      const size_t before = out->size();
      encode_piece(piece, out);
      cache.remember(piece, before, *out);
    }
  }

  // Hugging Face's SplitDelimiterBehavior on one piece [b, e) with matches relative to b.
  static void split_piece(uint32_t b, uint32_t e,
                          const std::vector<std::pair<uint32_t, uint32_t>>& matches,
                          SplitBehavior behavior, std::vector<std::pair<uint32_t, uint32_t>>* out) {
    uint32_t pos = b;
    for (const auto& [mb0, me0] : matches) {
      const uint32_t mb = b + mb0, me = b + me0;
      switch (behavior) {
        case SplitBehavior::kIsolated:
          if (mb > pos) out->push_back({pos, mb});
          out->push_back({mb, me});
          pos = me;
          break;
        case SplitBehavior::kRemoved:
          if (mb > pos) out->push_back({pos, mb});
          pos = me;
          break;
        case SplitBehavior::kMergedWithPrevious:
          out->push_back({pos, me});
          pos = me;
          break;
        case SplitBehavior::kMergedWithNext:
          if (mb > pos) out->push_back({pos, mb});
          pos = mb;  // the match starts the next piece
          break;
      }
    }
    if (e > pos) out->push_back({pos, e});
  }

  struct Symbol {
    int32_t id;
    int32_t prev, next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    bool operator<(const Candidate& o) const {  // top = lowest rank, then leftmost
      return rank > o.rank || (rank == o.rank && left > o.left);
    }
  };

  void encode_piece(std::string_view piece, std::vector<int32_t>* out) const {
    if (piece.empty()) return;
    if (m_.ignore_merges) {
      std::string mapped;
      if (m_.byte_level) {
        static const std::array<char32_t, 256> kB2U = bytes_to_unicode();
        for (const char c : piece) utf8_append(mapped, kB2U[static_cast<uint8_t>(c)]);
      }
      const int32_t id = find(m_.byte_level ? std::string_view(mapped) : piece);
      if (id >= 0) {
        out->push_back(id);
        return;
      }
    }
    std::vector<Symbol> sym;
    sym.reserve(piece.size());
    auto push = [&](int32_t id) {
      const auto n = static_cast<int32_t>(sym.size());
      sym.push_back({id, n - 1, -1});
      if (n > 0) sym[n - 1].next = n;
    };
    if (m_.byte_level) {
      for (const char c : piece) push(byte_ids_[static_cast<uint8_t>(c)]);
    } else {
      for (size_t i = 0; i < piece.size();) {
        size_t len = std::min(utf8_lead_length(static_cast<uint8_t>(piece[i])), piece.size() - i);
        const int32_t id = find(piece.substr(i, len));
        if (id >= 0) {
          push(id);
        } else if (m_.byte_fallback) {
          for (size_t k = 0; k < len; ++k) push(byte_ids_[static_cast<uint8_t>(piece[i + k])]);
        } else {
          push(-1);
        }
        i += len;
      }
    }
    std::priority_queue<Candidate> queue;
    auto consider = [&](int32_t l) {
      if (l < 0 || sym[l].next < 0 || sym[l].id < 0 || sym[sym[l].next].id < 0) return;
      const Merge* mg = merges_.find(pair_key(sym[l].id, sym[sym[l].next].id));
      if (mg) queue.push({mg->rank, l});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& l = sym[top.left];
      if (l.id < 0 || l.next < 0) continue;
      const Merge* mg = merges_.find(pair_key(l.id, sym[l.next].id));
      if (!mg || mg->rank != top.rank) continue;  // stale candidate
      Symbol& r = sym[l.next];
      l.id = mg->id;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = top.left;
      r.id = -2;  // merged away
      r.next = -1;
      consider(l.prev);
      consider(top.left);
    }
    bool prev_unk = false;
    for (int32_t i = 0; i >= 0 && i < static_cast<int32_t>(sym.size()); i = sym[i].next) {
      if (sym[i].id >= 0) {
        out->push_back(sym[i].id);
        prev_unk = false;
        continue;
      }
      if (m_.unk_id < 0)
        throw ConfigError("'" + m_.source +
                          "': text has a character the vocabulary cannot encode "
                          "and there is no unknown token");
      if (!prev_unk) out->push_back(m_.unk_id);  // fuse runs of unknowns
      prev_unk = true;
    }
  }

  BpeModel m_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_;
  // Merge table: open addressing with linear probing on a power-of-two array (the node-based
  // std::unordered_map was the encoder's hottest spot).
  class MergeTable {
   public:
    void reserve(size_t n) {
      size_t cap = 16;
      while (cap < 2 * n) cap *= 2;
      slots_.assign(cap, Slot{kEmpty, {}});
    }
    bool insert(uint64_t key, Merge m) {  // false when present (the first rank wins)
      for (size_t i = hash(key) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
        if (slots_[i].key == key) return false;
        if (slots_[i].key == kEmpty) {
          slots_[i] = {key, m};
          return true;
        }
      }
    }
    const Merge* find(uint64_t key) const {
      for (size_t i = hash(key) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
        if (slots_[i].key == key) return &slots_[i].merge;
        if (slots_[i].key == kEmpty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^31: never a real key
    static size_t hash(uint64_t x) {                  // splitmix64 finalizer
      x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
      x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
      return static_cast<size_t>(x ^ (x >> 31));
    }
    struct Slot {
      uint64_t key;
      Merge merge;
    };
    std::vector<Slot> slots_;
  };
  MergeTable merges_;
  std::unordered_map<char32_t, uint8_t> u2b_;
  SpecialTokenMatcher special_;
  std::array<int32_t, 256> byte_ids_{};
  std::vector<std::pair<SplitRegex, SplitBehavior>> regexes_;
};

}  // namespace

std::vector<BpeSplit> bpe_splits_for_pre(const std::string& pre, const std::string& source) {
  auto isolated = [](std::initializer_list<const char*> patterns) {
    std::vector<BpeSplit> v;
    for (const char* p : patterns) v.push_back({p, SplitBehavior::kIsolated});
    return v;
  };
  if (pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "jina-es" || pre == "jina-de" ||
      pre == "olmo" || pre == "poro-chat" || pre == "viking" || pre == "jais")
    return isolated({kGpt2SplitPattern});
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "dbrx" ||
      pre == "smaug-bpe" || pre == "falcon3")
    return isolated({kLlama3Pattern});
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "megrez")
    return isolated({kQwen2Pattern});
  if (pre == "deepseek-llm")
    return isolated({"[\r\n]", kDeepseekLetters, kDeepseekPunct, "\\s+$", kDeepseekCjk, "\\p{N}+"});
  if (pre == "deepseek-coder")
    return isolated({"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"});
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" ||
      pre == "codeshell" || pre == "exaone")
    return isolated({"\\p{N}", kGpt2SplitPattern});
  throw ConfigError("'" + source + "': unknown pre-tokenizer '" + pre +
                    "' (known: gpt-2, llama3, llama-bpe, qwen2, deepseek-llm, deepseek-coder, "
                    "starcoder and their aliases)");
}

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeModel model) {
  return std::make_unique<BpeTokenizer>(std::move(model));
}

}  // namespace dsq::text
