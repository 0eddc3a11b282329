// Tokenizer sources: SentencePiece tokenizer.model, GGUF tokenizer.ggml.* metadata, Hugging Face
// tokenizer.json, llama2.c tokenizer .bin; plus the .u32 id files.
#include "lib/text/tokenizer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "lib/text/tokenizer_bpe.h"
#include "lib/text/tokenizer_model.h"
#include "lib/text/tokenizer_spm.h"
#include "lib/text/unicode.h"
#include "formats/dsq/dsq_reader.h"
#include "formats/gguf/gguf.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/log.h"

namespace dsq::text {

namespace {

using nlohmann::json;

// ---- GGUF ----------------------------------------------------------------------------------

// llama.cpp's llama_token_type values in tokenizer.ggml.token_type.
enum GgufTokenType : int {
  kGgufNormal = 1,
  kGgufUnknown = 2,
  kGgufControl = 3,
  kGgufUserDefined = 4,
  kGgufUnused = 5,
  kGgufByte = 6
};

template <class T>
std::vector<T> gguf_array(const json& md, const std::string& key, const std::string& path,
                          bool required) {
  const auto it = md.find(key);
  if (it == md.end()) {
    if (required) throw FormatError("'" + path + "': metadata key '" + key + "' is missing");
    return {};
  }
  if (!it->is_array())
    throw FormatError("'" + path + "': metadata key '" + key + "' is not an array");
  std::vector<T> v;
  v.reserve(it->size());
  for (const auto& e : *it) {
    T x{};
    if (!json_get(e, &x))
      throw FormatError("'" + path + "': metadata key '" + key + "' has elements of the wrong type");
    v.push_back(std::move(x));
  }
  return v;
}

int32_t gguf_int(const json& md, const std::string& key, int32_t fallback) {
  const auto it = md.find(key);
  if (it == md.end() || !it->is_number_integer()) return fallback;
  const auto v = it->get<int64_t>();
  return v < 0 || v > INT32_MAX ? -1 : static_cast<int32_t>(v);  // 0xFFFFFFFF means "none"
}

// `md`: the GGUF metadata (or the tokenizer.* subset a .dsq header embeds); `path` names it.
TokenizerModel load_gguf_metadata(const json& md, const std::string& path) {
  const auto model_it = md.find("tokenizer.ggml.model");
  if (model_it == md.end() || !model_it->is_string())
    throw ConfigError("'" + path + "': no tokenizer in the GGUF metadata (tokenizer.ggml.model)");
  const std::string model = model_it->get<std::string>();
  if (model == "no_vocab" || model == "none")  // llama.cpp's marker for a vocabulary-less model
    throw ConfigError("'" + path + "': no tokenizer in the GGUF metadata (tokenizer.ggml.model = " +
                      model + ")");
  const auto tokens = gguf_array<std::string>(md, "tokenizer.ggml.tokens", path, true);
  auto types = gguf_array<int32_t>(md, "tokenizer.ggml.token_type", path, false);
  if (types.empty()) types.assign(tokens.size(), kGgufNormal);
  if (types.size() != tokens.size())
    throw FormatError(strprintf("'%s': %zu token types for %zu tokens", path.c_str(), types.size(),
                                tokens.size()));
  const int32_t bos = gguf_int(md, "tokenizer.ggml.bos_token_id", -1);
  const int32_t eos = gguf_int(md, "tokenizer.ggml.eos_token_id", -1);
  // llama.cpp's default: SentencePiece vocabularies add BOS, BPE ones do not.
  const auto add_bos_it = md.find("tokenizer.ggml.add_bos_token");
  const bool add_bos = add_bos_it != md.end() && add_bos_it->is_boolean() ? add_bos_it->get<bool>()
                                                                         : model == "llama";
  const int32_t unk = gguf_int(md, "tokenizer.ggml.unknown_token_id", -1);

  if (model == "llama") {
    auto scores = gguf_array<float>(md, "tokenizer.ggml.scores", path, false);
    if (scores.empty()) scores.assign(tokens.size(), 0.0f);
    if (scores.size() != tokens.size())
      throw FormatError(
          strprintf("'%s': %zu scores for %zu tokens", path.c_str(), scores.size(), tokens.size()));
    SpmModel m;
    m.source = path;
    m.sentencepiece_mode = false;
    m.remove_extra_whitespaces = false;
    const auto prefix = md.find("tokenizer.ggml.add_space_prefix");
    if (prefix != md.end() && prefix->is_boolean()) m.add_dummy_prefix = prefix->get<bool>();
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int t = types[i];
      if (t < kGgufNormal || t > kGgufByte)
        throw FormatError(strprintf("'%s': token %zu has unknown type %d", path.c_str(), i, t));
      SpmPieceType type = static_cast<SpmPieceType>(t);
      if (static_cast<int32_t>(i) == unk) type = SpmPieceType::kUnknown;
      m.byte_fallback |= type == SpmPieceType::kByte;
      m.pieces.push_back({tokens[i], scores[i], type});
    }
    m.bos_id = bos;
    m.eos_id = eos;
    m.add_bos = add_bos;
    return m;
  }
  if (model == "gpt2") {
    BpeModel m;
    m.source = path;
    m.tokens = tokens;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int t = types[i];
      m.kinds.push_back(t == kGgufControl || t == kGgufUnknown ? BpeTokenKind::kControl
                        : t == kGgufUserDefined                ? BpeTokenKind::kAdded
                                                               : BpeTokenKind::kNormal);
    }
    for (const std::string& merge :
         gguf_array<std::string>(md, "tokenizer.ggml.merges", path, true)) {
      const size_t sp = merge.find(' ', 1);
      if (sp == std::string::npos)
        throw FormatError("'" + path + "': merge '" + merge + "' has no space separator");
      m.merges.emplace_back(merge.substr(0, sp), merge.substr(sp + 1));
    }
    std::string pre = "default";
    const auto pre_it = md.find("tokenizer.ggml.pre");
    if (pre_it != md.end() && pre_it->is_string()) pre = pre_it->get<std::string>();
    if (pre == "default") {
      log_warn("'" + path + "': no tokenizer.ggml.pre; using the GPT-2 pre-tokenizer");
      pre = "gpt-2";
    }
    m.splits = bpe_splits_for_pre(pre, path);
    m.pre = pre;
    m.bos_id = bos;
    m.eos_id = eos;
    m.unk_id = unk;
    m.add_bos = add_bos;
    return m;
  }
  throw ConfigError("'" + path + "': tokenizer model '" + model +
                    "' is not supported (supported: llama, gpt2)");
}

// ---- Hugging Face tokenizer.json -------------------------------------------------------------

std::string json_str(const json& j, const char* key, const std::string& fallback = "") {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// Escapes a literal string for SplitRegex.
std::string regex_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (std::strchr("\\^$.|?*+()[]{}-", c) && c != 0) out += '\\';
    out += c;
  }
  return out;
}

struct HfParseState {
  const std::string& path;
  BpeModel* m;
  bool byte_level = false;
};

void apply_normalizer(const json& n, HfParseState* st) {
  if (n.is_null()) return;
  const std::string type = json_str(n, "type");
  if (type == "Sequence") {
    for (const auto& sub : json_member(n, "normalizers")) apply_normalizer(sub, st);
  } else if (type == "Prepend" && json_str(n, "prepend") == "\xE2\x96\x81") {
    st->m->prepend_space_symbol = true;
  } else if (type == "Replace" && n.contains("pattern") &&
             json_str(n["pattern"], "String") == " " && json_str(n, "content") == "\xE2\x96\x81") {
    st->m->replace_space_symbol = true;
  } else if (type == "NFC") {
    st->m->nfc = true;
  } else {
    throw ConfigError("'" + st->path + "': normalizer '" + (type.empty() ? json_excerpt(n) : type.substr(0, 60)) +
                      "' is not supported");
  }
}

void apply_pre_tokenizer(const json& p, HfParseState* st) {
  if (p.is_null()) return;
  const std::string type = json_str(p, "type");
  if (type == "Sequence") {
    for (const auto& sub : json_member(p, "pretokenizers")) apply_pre_tokenizer(sub, st);
  } else if (type == "ByteLevel") {
    st->byte_level = true;
    st->m->add_prefix_space = p.value("add_prefix_space", false);
    if (p.value("use_regex", true))
      st->m->splits.push_back({kGpt2SplitPattern, SplitBehavior::kIsolated});
  } else if (type == "Split") {
    if (p.value("invert", false))
      throw ConfigError("'" + st->path + "': Split pre-tokenizer with invert is not supported");
    const json& pat = json_member(p, "pattern");
    std::string regex;
    if (pat.contains("Regex"))
      regex = json_str(pat, "Regex");
    else if (pat.contains("String"))
      regex = regex_escape(json_str(pat, "String"));
    else
      throw FormatError("'" + st->path + "': Split pre-tokenizer without a pattern");
    const std::string behavior = json_str(p, "behavior", "Isolated");
    SplitBehavior b;
    if (behavior == "Isolated")
      b = SplitBehavior::kIsolated;
    else if (behavior == "Removed")
      b = SplitBehavior::kRemoved;
    else if (behavior == "MergedWithPrevious")
      b = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      b = SplitBehavior::kMergedWithNext;
    else
      throw ConfigError("'" + st->path + "': Split behavior '" + behavior + "' is not supported");
    st->m->splits.push_back({regex, b});
  } else if (type == "Metaspace" && json_str(p, "replacement", "\xE2\x96\x81") == "\xE2\x96\x81" &&
             !p.value("split", false)) {
    st->m->replace_space_symbol = true;
    st->m->prepend_space_symbol = json_str(p, "prepend_scheme", "always") != "never";
  } else {
    throw ConfigError("'" + st->path + "': pre-tokenizer '" + (type.empty() ? json_excerpt(p) : type.substr(0, 60)) +
                      "' is not supported");
  }
}

// bos_token / eos_token of a tokenizer_config.json (strings or {"content": ...} objects); empty
// when there is no config.
std::pair<std::string, std::string> hf_bos_eos(const std::optional<std::string>& config,
                                               const std::string& cfg_name) {
  if (!config) return {};
  json j;
  try {
    j = parse_json(*config, cfg_name);
  } catch (const json::exception& e) {
    throw FormatError("'" + cfg_name + "': invalid JSON: " + e.what());
  }
  auto get = [&](const char* key) -> std::string {
    const auto it = j.find(key);
    if (it == j.end()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object()) return json_str(*it, "content");
    return "";
  };
  return {get("bos_token"), get("eos_token")};
}

TokenizerModel hf_json_model(const json& j, const std::string& path,
                             const std::optional<std::string>& config, const std::string& cfg_name);

TokenizerModel load_hf_json(const std::string& text, const std::string& path,
                            const std::optional<std::string>& config, const std::string& cfg_name) {
  json j;
  try {
    j = parse_json(text, path);
  } catch (const json::exception& e) {
    throw FormatError("'" + path + "': invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw FormatError("'" + path + "': not a tokenizer.json (not a JSON object)");
  // The fields are checked where they are read; a value of another type than tokenizers writes
  // (e.g. "byte_fallback": 0) that a check does not name is still this file's FormatError.
  try {
    return hf_json_model(j, path, config, cfg_name);
  } catch (const json::exception& e) {
    throw FormatError("'" + path + "': a field has an unexpected type (" + std::string(e.what()) + ")");
  }
}

TokenizerModel hf_json_model(const json& j, const std::string& path,
                             const std::optional<std::string>& config, const std::string& cfg_name) {
  const json& model = json_member(j, "model");
  const std::string type = json_str(model, "type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE")
    throw ConfigError("'" + path + "': tokenizer model type '" + type +
                      "' is not supported (only BPE)");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    throw FormatError("'" + path + "': model.vocab is missing");
  if (!model.contains("merges") || !model["merges"].is_array())
    throw FormatError("'" + path + "': model.merges is missing");
  BpeModel m;
  m.source = path;
  std::vector<std::pair<int64_t, std::string>> entries;
  std::vector<std::pair<int64_t, const json*>> added;
  int64_t max_id = -1;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw FormatError("'" + path + "': vocab entry '" + text + "' has a bad id");
    entries.emplace_back(id.get<int64_t>(), text);
    max_id = std::max(max_id, id.get<int64_t>());
  }
  const json& added_tokens = json_member(j, "added_tokens");  // `added` points into it
  for (const auto& a : added_tokens) {
    if (!a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() > INT32_MAX || !a.contains("content") || !a["content"].is_string())
      throw FormatError("'" + path + "': malformed added_tokens entry " + json_excerpt(a));
    added.emplace_back(a["id"].get<int64_t>(), &a);
    max_id = std::max(max_id, a["id"].get<int64_t>());
  }
  // Every id in [0, max_id] must appear (checked below): bound the table by the entries first.
  if (static_cast<uint64_t>(max_id + 1) > entries.size() + added.size())
    throw FormatError(strprintf("'%s': token ids go up to %lld but there are %zu tokens: ids are missing",
                                path.c_str(), static_cast<long long>(max_id),
                                entries.size() + added.size()));
  m.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  m.kinds.assign(m.tokens.size(), BpeTokenKind::kNormal);
  std::vector<bool> seen(m.tokens.size(), false);
  for (auto& [id, text] : entries) {
    m.tokens[id] = std::move(text);
    seen[id] = true;
  }
  for (const auto& [id, a] : added) {
    m.tokens[id] = (*a)["content"].get<std::string>();
    m.kinds[id] = a->value("special", false) ? BpeTokenKind::kControl : BpeTokenKind::kAdded;
    seen[id] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i])
      throw FormatError(
          strprintf("'%s': token id %zu is missing from the vocabulary", path.c_str(), i));
  for (const auto& merge : model["merges"]) {
    if (merge.is_string()) {
      const std::string s = merge.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos)
        throw FormatError("'" + path + "': merge '" + s + "' has no space");
      m.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      m.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      throw FormatError("'" + path + "': malformed merge " + json_excerpt(merge));
    }
  }
  m.byte_fallback = model.value("byte_fallback", false);
  m.ignore_merges = model.value("ignore_merges", false);
  HfParseState st{path, &m};
  apply_normalizer(json_member(j, "normalizer"), &st);
  apply_pre_tokenizer(json_member(j, "pre_tokenizer"), &st);
  const json& dec = json_member(j, "decoder");
  m.byte_level = st.byte_level || (dec.is_object() && json_str(dec, "type") == "ByteLevel");
  auto id_of = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (size_t i = 0; i < m.tokens.size(); ++i)
      if (m.tokens[i] == text) return static_cast<int32_t>(i);
    return -1;
  };
  const std::string unk = model.contains("unk_token") && model["unk_token"].is_string()
                              ? model["unk_token"].get<std::string>()
                              : "";
  m.unk_id = id_of(unk);
  const auto [bos, eos] = hf_bos_eos(config, cfg_name);
  m.bos_id = id_of(bos);
  m.eos_id = id_of(eos);
  // BOS is added by the post-processor in a fast tokenizer: a TemplateProcessing (possibly inside
  // a Sequence) whose single-sequence template starts with a special token.
  const json& post = json_member(j, "post_processor");
  std::vector<const json*> procs;  // point into `j`
  if (post.is_object() && json_str(post, "type") == "Sequence") {
    if (const auto it = post.find("processors"); it != post.end())
      for (const auto& p : *it) procs.push_back(&p);
  } else if (post.is_object()) {
    procs.push_back(&post);
  }
  for (const json* p : procs) {
    if (json_str(*p, "type") != "TemplateProcessing") continue;
    const json& single = json_member(*p, "single");
    if (!single.is_array() || single.empty() || !single[0].is_object() ||
        !single[0].contains("SpecialToken"))
      continue;
    const int32_t id = id_of(json_str(single[0]["SpecialToken"], "id"));
    if (id < 0)
      throw FormatError("'" + path + "': the post-processor's first special token is not in the "
                        "vocabulary");
    if (m.bos_id < 0) m.bos_id = id;
    m.add_bos = id == m.bos_id;
  }
  return m;
}

// ---- llama2.c tokenizer.bin ------------------------------------------------------------------

// Layout: u32 max_token_length, then per token: f32 score, u32 length, bytes. Spaces stand for
// "▁", BOS/EOS are written as "\n<s>\n" / "\n</s>\n"; the file has no token count, so tokens run
// to the end of the file. Rebuilt as a SentencePiece model with the default normalizer.
TokenizerModel load_llama2c(const std::string& bytes, const std::string& path) {
  SpmModel m;
  m.source = path;
  size_t pos = 4;
  if (bytes.size() < 4) throw FormatError("'" + path + "': too short for a llama2.c tokenizer");
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 8)
      throw FormatError(
          strprintf("'%s': truncated token %zu at byte %zu", path.c_str(), m.pieces.size(), pos));
    float score;
    uint32_t len;
    std::memcpy(&score, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pos += 8;
    if (len == 0 || len > bytes.size() - pos)
      throw FormatError(strprintf("'%s': token %zu has length %u with %zu bytes left", path.c_str(),
                                  m.pieces.size(), len, bytes.size() - pos));
    std::string text = bytes.substr(pos, len);
    pos += len;
    SpmPiece p;
    p.score = score;
    if (text == "\n<s>\n" || text == "\n</s>\n") {
      p.text = text.substr(1, text.size() - 2);
      p.type = SpmPieceType::kControl;
    } else if (text == "<unk>") {
      p.text = text;
      p.type = SpmPieceType::kUnknown;
    } else if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
      p.text = text;
      p.type = SpmPieceType::kByte;
      m.byte_fallback = true;
    } else {
      for (const char c : text) {
        if (c == ' ')
          p.text += "\xE2\x96\x81";
        else
          p.text += c;
      }
    }
    m.pieces.push_back(std::move(p));
  }
  return m;
}

// The bytes of tokenizer file `name`: embedded in a .dsq header's "files" when present (so a
// .dsq stays usable after the original files are gone), else read from `path`.
std::string file_bytes(const json& ref, const std::string& name, const std::string& path) {
  if (ref.contains("files")) {
    if (auto embedded = formats::dsq_embedded_file(ref, name)) return *embedded;
  }
  return load_text_file(path);
}

}  // namespace

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_size_)
    throw ConfigError(strprintf("'%s': token id %d is outside the vocabulary of %zu",
                                source_.c_str(), id, vocab_size_));
}

void require_text(std::string_view text, const std::string& path) {
  size_t bad = 0;
  for (size_t pos = 0; pos < text.size();) {
    if (text[pos] == '\0')
      throw FormatError(strprintf("'%s': a NUL byte at offset %zu: not a text file", path.c_str(),
                                  pos));
    size_t len = 1;
    if (utf8_decode(text, pos, &len) == kInvalidCodepoint) ++bad;
    pos += len;
  }
  if (bad * 100 > text.size())
    throw FormatError(strprintf("'%s': %zu bytes of malformed UTF-8: not a text file",
                                path.c_str(), bad));
}

TokenizerModel load_tokenizer_model(const json& ref) {
  if (!ref.is_object() || !ref.contains("kind") || !ref["kind"].is_string() ||
      !ref.contains("path") || !ref["path"].is_string())
    throw ConfigError("tokenizer reference must be {\"kind\": ..., \"path\": ...}, got " +
                      json_excerpt(ref));
  const std::string kind = ref["kind"].get<std::string>();
  const std::string path = ref["path"].get<std::string>();
  const std::filesystem::path fs_path(path);
  const std::string name = fs_path.filename().string();
  if (kind == "sentencepiece") {
    SpmModel m = parse_sentencepiece_model(file_bytes(ref, name, path), path);
    if (ref.contains("add_bos_token") && ref["add_bos_token"].is_boolean())
      m.add_bos = ref["add_bos_token"].get<bool>();
    return m;
  }
  if (kind == "hf-json") {
    const std::string cfg_path = (fs_path.parent_path() / "tokenizer_config.json").string();
    std::optional<std::string> config;
    if (ref.contains("files")) config = formats::dsq_embedded_file(ref, "tokenizer_config.json");
    if (!config && std::filesystem::is_regular_file(cfg_path)) config = load_text_file(cfg_path);
    return load_hf_json(file_bytes(ref, name, path), path, config, cfg_path);
  }
  if (kind == "gguf") {
    if (ref.contains("gguf_metadata") && ref["gguf_metadata"].is_object())
      return load_gguf_metadata(ref["gguf_metadata"], path);
    const formats::GgufFile file = formats::GgufFile::open(path);
    return load_gguf_metadata(file.metadata(), path);
  }
  if (kind == "llama2c") return load_llama2c(file_bytes(ref, name, path), path);
  throw ConfigError("'" + path + "': unknown tokenizer kind '" + kind +
                    "' (known: sentencepiece, hf-json, gguf, llama2c)");
}

std::unique_ptr<Tokenizer> make_tokenizer(TokenizerModel m) {
  if (auto* spm = std::get_if<SpmModel>(&m)) return make_spm_tokenizer(std::move(*spm));
  return make_bpe_tokenizer(std::move(std::get<BpeModel>(m)));
}

std::unique_ptr<Tokenizer> load_tokenizer(const json& ref) {
  return make_tokenizer(load_tokenizer_model(ref));
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".json") == 0)
    return load_tokenizer({{"kind", "hf-json"}, {"path", path}});
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("'" + path + "': cannot open");
  char magic[4] = {};
  f.read(magic, 4);
  if (f.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0)
    return load_tokenizer({{"kind", "gguf"}, {"path", path}});
  // A ModelProto starts with field 1 (pieces), wire type 2: byte 0x0A. A llama2.c file starts
  // with a small u32 max_token_length.
  if (f.gcount() >= 1 && magic[0] == 0x0A)
    return load_tokenizer({{"kind", "sentencepiece"}, {"path", path}});
  return load_tokenizer({{"kind", "llama2c"}, {"path", path}});
}

std::vector<int32_t> read_token_ids(const std::string& path) {
  const std::string bytes = load_text_file(path);
  if (bytes.size() % 4 != 0)
    throw FormatError(strprintf("'%s': %zu bytes is not a whole number of uint32 token ids",
                                path.c_str(), bytes.size()));
  std::vector<int32_t> ids(bytes.size() / 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto* b = reinterpret_cast<const uint8_t*>(bytes.data() + 4 * i);
    const uint32_t v = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    if (v > static_cast<uint32_t>(INT32_MAX))
      throw FormatError(
          strprintf("'%s': token %zu has id %u, larger than int32", path.c_str(), i, v));
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

std::string load_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("'" + path + "': cannot open: " + std::strerror(errno));
  std::string s;
  f.seekg(0, std::ios::end);
  const auto size = f.tellg();
  if (size < 0) throw IoError("'" + path + "': cannot determine the size");
  s.resize(static_cast<size_t>(size));
  f.seekg(0);
  f.read(s.data(), size);
  if (f.gcount() != size) throw IoError("'" + path + "': read failed");
  return s;
}

}  // namespace dsq::text
