// The JSON header write_dsq stores for a WeightStore (docs/FORMAT.md, "JSON header").
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "formats/dsq/dsq_util.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/gguf/gguf.h"
#include "lib/core/error.h"
#include "lib/core/hash.h"

namespace dsq::formats {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Tokenizer files a Hugging Face directory may hold; embedded when found beside a source file.
constexpr const char* kTokenizerFiles[] = {"tokenizer.model", "tokenizer.json",
                                           "tokenizer_config.json", "special_tokens_map.json"};
constexpr uintmax_t kMaxEmbeddedFile = uintmax_t{64} << 20;

std::string read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("'" + path + "': cannot open tokenizer file");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A GGUF tokenizer lives in the model's metadata: copy its tokenizer.* keys into the header
// ("gguf_metadata") so the .dsq is self-contained. Skipped when the strings are not valid UTF-8
// (JSON cannot carry them); the "path" reference stays either way.
void embed_gguf_vocab(json& tok) {
  if (!tok.is_object() || tok.value("kind", "") != "gguf" || !tok.contains("path") ||
      tok.contains("gguf_metadata"))
    return;
  std::error_code ec;
  const std::string path = tok["path"].get<std::string>();
  if (!fs::is_regular_file(path, ec)) return;
  json vocab = json::object();
  const GgufFile gguf = GgufFile::open(path);  // must outlive the loop over its metadata
  for (auto& [k, v] : gguf.metadata().items())
    if (k.rfind("tokenizer.", 0) == 0) vocab[k] = v;
  try {
    (void)vocab.dump();
  } catch (const json::exception&) {
    return;
  }
  tok["gguf_metadata"] = std::move(vocab);
}

// Replaces file references in the tokenizer object by embedded {bytes, sha256, base64} entries.
json embed_tokenizer_files(json tok, const std::vector<SourceFile>& sources) {
  const fs::path base = sources.empty() ? fs::path() : fs::path(sources[0].path).parent_path();
  std::map<std::string, std::string> wanted;  // file name -> path
  auto want = [&](const std::string& p) {
    const fs::path path = fs::path(p).is_absolute() ? fs::path(p) : base / p;
    wanted[path.filename().string()] = path.string();
  };
  json files = json::object();
  if (tok.is_object()) {
    // A GGUF tokenizer's "path" is the GGUF model itself: its vocabulary travels as
    // "gguf_metadata" (embed_gguf_vocab), the file is not a tokenizer file to embed. (Embedding it
    // copied a whole model into the header once the .dsq was read back and written again.)
    const auto kind = tok.find("kind");
    const bool gguf = kind != tok.end() && kind->is_string() && *kind == "gguf";
    if (auto it = tok.find("path"); !gguf && it != tok.end() && it->is_string())
      want(it->get<std::string>());
    if (auto it = tok.find("files"); it != tok.end()) {
      if (it->is_array()) {
        for (const auto& p : *it)
          if (p.is_string()) want(p.get<std::string>());
      } else if (it->is_object()) {
        for (auto& [name, v] : it->items()) {
          if (v.is_string()) want(v.get<std::string>());
          else files[name] = v;  // already embedded (a .dsq read back)
        }
      }
    }
  }
  for (const auto& s : sources) {
    const fs::path dir = fs::path(s.path).parent_path();
    for (const char* name : kTokenizerFiles) {
      std::error_code ec;
      if (fs::is_regular_file(dir / name, ec) && !wanted.count(name))
        wanted[name] = (dir / name).string();
    }
  }
  for (const auto& s : sources) {  // a reference to the model file itself is not a tokenizer file
    std::error_code ec;
    for (auto it = wanted.begin(); it != wanted.end();)
      it = fs::equivalent(it->second, s.path, ec) ? wanted.erase(it) : std::next(it);
  }
  for (const auto& [name, path] : wanted) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || size > kMaxEmbeddedFile || files.contains(name)) continue;
    const std::string bytes = read_file_bytes(path);
    files[name] = {{"bytes", bytes.size()},
                   {"sha256", sha256_hex(bytes.data(), bytes.size())},
                   {"base64", base64_encode(bytes)}};
  }
  embed_gguf_vocab(tok);
  if (files.empty()) return tok;
  if (!tok.is_object()) tok = json::object();
  tok["files"] = files;
  return tok;
}

}  // namespace

json dsq_header_for(const WeightStore& ws, const DsqWriteOptions& opts) {
  json h = json::object();
  if (ws.has_config) h["config"] = ws.config;
  const json& meta = ws.metadata;
  json tok = meta.contains("tokenizer") ? meta["tokenizer"] : json();
  if (opts.embed_tokenizer) tok = embed_tokenizer_files(tok, ws.sources);
  if (!tok.is_null()) h["tokenizer"] = tok;

  json prov = {{"dsq_version", DSQ_VERSION},
               {"source_format", meta.value("source_format", std::string())}};
  json srcs = json::array();
  for (const auto& s : ws.sources) {
    json sha = s.sha256;
    std::error_code ec;
    if (s.sha256.empty() && fs::is_regular_file(s.path, ec)) {
      sha = nullptr;  // DsqWriter::finish fills it; a large file is hashed in the background meanwhile
      sha256_file_prefetch(s.path);
    }
    srcs.push_back({{"path", s.path}, {"bytes", s.bytes}, {"sha256", sha}});
  }
  prov["sources"] = srcs;
  if (meta.contains("provenance")) prov["parent"] = meta["provenance"];
  h["provenance"] = prov;

  if (!opts.recipe.is_null()) h["recipe"] = opts.recipe;
  else if (meta.contains("recipe")) h["recipe"] = meta["recipe"];

  json rest = json::object();
  for (auto& [k, v] : meta.items())
    if (k != "tokenizer" && k != "provenance" && k != "recipe" && k != "source_format") rest[k] = v;
  if (!rest.empty()) h["metadata"] = rest;
  return h;
}

}  // namespace dsq::formats
