// Tokenizers against real references: the stories260K .u32 id files (made with python
// sentencepiece) and llama.cpp's tokenizer test vectors (ids from Hugging Face tokenizers).
#include "lib/text/tokenizer.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "formats/dsq/dsq_util.h"
#include "formats/gguf/gguf.h"
#include "lib/core/error.h"
#include "lib/core/hash.h"
#include "tests/test_util.h"

namespace dsq::text {
namespace {

using ::dsq::testing::TempDir;

std::string slurp(const std::string& path) { return load_text_file(path); }

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Splits a llama.cpp .inp file: strings separated by "\n__ggml_vocab_test__\n".
std::vector<std::string> split_inputs(const std::string& text) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t next = text.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> read_expected(const std::string& path) {
  std::vector<std::vector<int32_t>> out;
  std::istringstream in(slurp(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    out.push_back(ids);
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

class VocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabTest, MatchesHuggingFaceIdsOnAll46Inputs) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string base = shared + "/data/tokenizer-tests/ggml-vocab-" + GetParam() + ".gguf";
  const auto tok = load_tokenizer({{"kind", "gguf"}, {"path", base}});
  const auto inputs = split_inputs(slurp(base + ".inp"));
  const auto expected = read_expected(base + ".out");
  ASSERT_EQ(inputs.size(), 46u);
  ASSERT_EQ(expected.size(), 46u);
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = tok->encode(inputs[i], /*add_bos=*/false);
    if (got != expected[i]) ++failures;
    EXPECT_EQ(got, expected[i]) << "input " << i << " '" << inputs[i] << "'\n got: " << show(got)
                                << "\nwant: " << show(expected[i]);
  }
  EXPECT_EQ(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(TokenizerTests, VocabTest,
                         ::testing::Values("gpt-2", "llama-spm", "deepseek-llm", "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

struct U32Case {
  const char* ids_file;
  const char* text_file;
  size_t begin, end;  // byte range of the text (end 0: to the end of the file)
  bool crlf_to_lf;
  size_t expected_count;
};

class Stories260KIds : public ::testing::TestWithParam<U32Case> {};

TEST_P(Stories260KIds, ReproducesSentencePieceIdsFromText) {
  DSQ_REQUIRE_SHARED(shared);
  const U32Case c = GetParam();
  const auto tok = load_tokenizer(
      {{"kind", "sentencepiece"}, {"path", shared + "/models/stories260K/tok512.model"}});
  std::string text = slurp(shared + "/data/" + c.text_file);
  text = text.substr(c.begin, c.end ? c.end - c.begin : std::string::npos);
  if (c.crlf_to_lf) {
    std::string t;
    for (size_t i = 0; i < text.size(); ++i)
      if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) t += text[i];
    text.swap(t);
  }
  const auto expected = read_token_ids(shared + "/data/" + c.ids_file);
  ASSERT_EQ(expected.size(), c.expected_count);
  auto ids = tok->encode(text, /*add_bos=*/true);
  ASSERT_GE(ids.size(), expected.size());
  ids.resize(expected.size());
  size_t first_diff = 0;
  while (first_diff < ids.size() && ids[first_diff] == expected[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, expected.size()) << "first difference at id " << first_diff;
}

INSTANTIATE_TEST_SUITE_P(
    SharedData, Stories260KIds,
    ::testing::Values(U32Case{"tinystories-eval.stories260K.u32", "tinystories-train-excerpt.txt",
                              712780, 0, false, 16384},
                      U32Case{"tinystories-calib.stories260K.u32", "tinystories-train-excerpt.txt",
                              0, 712780, false, 360921},
                      U32Case{"wikitext2-test.stories260K.u32", "wikitext-2-raw-test.txt", 0, 0,
                              true, 16384}),
    [](const auto& info) {
      return std::string(info.index == 0 ? "eval" : info.index == 1 ? "calib" : "wikitext");
    });

TEST(SentencePiece, CalibIdsAreAllOfTheTextAndDecodeBack) {
  DSQ_REQUIRE_SHARED(shared);
  const auto tok = load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  EXPECT_EQ(tok->vocab_size(), 512u);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const std::string text = slurp(shared + "/data/tinystories-train-excerpt.txt").substr(0, 712780);
  // The whole calibration part gives exactly the 360,921 ids of the file (no truncation there).
  EXPECT_EQ(tok->encode(text, true).size(), 360921u);
  const std::string eval = slurp(shared + "/data/tinystories-train-excerpt.txt").substr(712780);
  const auto ids = tok->encode(eval, false);
  EXPECT_EQ(tok->decode(ids), eval);
}

TEST(SentencePiece, ByteFallbackAndDecodeOfBytePieces) {
  DSQ_REQUIRE_SHARED(shared);
  const auto tok = load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  // '中' (E4 B8 AD) is not a piece of the 512 vocabulary: byte pieces <0xNN> = id 3 + NN.
  const std::string text = "big \xE4\xB8\xAD cat";
  const auto ids = tok->encode(text, false);
  const std::vector<int32_t> bytes_e9 = {3 + 0xE4, 3 + 0xB8, 3 + 0xAD};
  EXPECT_NE(std::search(ids.begin(), ids.end(), bytes_e9.begin(), bytes_e9.end()), ids.end())
      << show(ids);
  EXPECT_EQ(tok->token_text(3 + 0xE4), "<0xE4>");
  EXPECT_EQ(tok->decode(ids), text);
  // remove_extra_whitespaces: leading, trailing and repeated spaces vanish.
  EXPECT_EQ(tok->encode("  a   b  ", false), tok->encode("a b", false));
  EXPECT_TRUE(tok->encode("", false).empty());
  EXPECT_EQ(tok->encode("", true), std::vector<int32_t>{1});
}

// Found by the fuzzing campaign: a byte piece spelled with a sign ("<0x-4>") was parsed by
// sscanf's %X into a huge index. It is a one-line FormatError now.
TEST(SentencePiece, SignedBytePieceIsRejected) {
  ::dsq::testing::TempDir dir;
  const std::string path = dir.file("tokenizer.bin");
  {
    std::ofstream f(path, std::ios::binary);
    const int32_t max_len = 8;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    for (const std::string piece : {"<unk>", "<s>", "</s>", "<0x-4>", "a"}) {
      const float score = 0.0f;
      const auto n = static_cast<int32_t>(piece.size());
      f.write(reinterpret_cast<const char*>(&score), 4);
      f.write(reinterpret_cast<const char*>(&n), 4);
      f.write(piece.data(), n);
    }
  }
  try {
    (void)text::load_tokenizer({{"kind", "llama2c"}, {"path", path}});
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'<0x-4>' is not <0xNN>"), std::string::npos) << e.what();
  }
}

TEST(SentencePiece, Llama2cTokenizerBinGivesTheSameIds) {
  DSQ_REQUIRE_SHARED(shared);
  const auto spm = load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  const auto l2c = load_tokenizer_file(shared + "/models/stories260K/llama2c/tok512.bin");
  EXPECT_EQ(l2c->vocab_size(), 512u);
  EXPECT_EQ(l2c->bos_id(), 1);
  const std::string text = slurp(shared + "/data/wikitext-2-raw-test.txt").substr(0, 50000);
  EXPECT_EQ(l2c->encode(text, true), spm->encode(text, true));
}

TEST(SentencePiece, GreedySampleDecodesToTheManifestText) {
  DSQ_REQUIRE_SHARED(shared);
  const auto tok = load_tokenizer_file(shared + "/models/stories260K/stories260K.gguf");
  EXPECT_EQ(tok->encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  const std::vector<int32_t> ids = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                    421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419,
                                    292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432};
  EXPECT_EQ(tok->decode(ids),
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day,");
}

TEST(SentencePiece, CorruptModelBytesGiveFormatErrorsNamingTheFile) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir dir;
  const std::string good = slurp(shared + "/models/stories260K/tok512.model");
  struct Corruption {
    const char* name;
    std::string bytes;
    const char* message;
  };
  std::string bad_len = good;
  bad_len[1] = static_cast<char>(0x7F);  // first piece claims 127 bytes, swallowing others
  std::string bad_wire = good;
  bad_wire[0] = 0x0F;  // field 1 with wire type 7
  const Corruption cases[] = {
      {"truncated", good.substr(0, good.size() / 2), "not a valid sentencepiece model"},
      {"wire", bad_wire, "has wire type 7"},
      {"length", bad_len, "not a valid sentencepiece model"},
      {"empty", "", "no pieces"},
  };
  for (const auto& c : cases) {
    const std::string path = dir.file(std::string(c.name) + ".model");
    write_file(path, c.bytes);
    try {
      load_tokenizer({{"kind", "sentencepiece"}, {"path", path}});
      ADD_FAILURE() << c.name << ": no error";
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.message), std::string::npos) << c.name << ": " << msg;
    }
  }
}

// A .dsq header carries its tokenizer: embedded files ({bytes, sha256, base64}) or the GGUF
// tokenizer.* keys. They are used even when the original path is gone.
TEST(TokenizerRef, EmbeddedFilesAndGgufMetadataFromADsqHeader) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string model = slurp(shared + "/models/stories260K/tok512.model");
  nlohmann::json entry = nlohmann::json::object();
  entry["bytes"] = model.size();
  entry["sha256"] = sha256_hex(model.data(), model.size());
  entry["base64"] = formats::base64_encode(model);
  nlohmann::json ref = {{"kind", "sentencepiece"}, {"path", "/gone/tokenizer.model"}};
  ref["files"] = nlohmann::json::object();
  ref["files"]["tokenizer.model"] = entry;
  const std::string text = "Once upon a time, there was a dog.";
  const auto direct = load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  EXPECT_EQ(load_tokenizer(ref)->encode(text, true), direct->encode(text, true));
  ref["files"]["tokenizer.model"]["sha256"] = std::string(64, '0');
  EXPECT_THROW(load_tokenizer(ref), FormatError);

  const std::string gguf = shared + "/models/stories260K/stories260K.gguf";
  const formats::GgufFile file = formats::GgufFile::open(gguf);
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [k, v] : file.metadata().items())
    if (k.rfind("tokenizer.", 0) == 0) vocab[k] = v;
  const nlohmann::json gref = {
      {"kind", "gguf"}, {"path", "/gone/m.gguf"}, {"gguf_metadata", vocab}};
  EXPECT_EQ(load_tokenizer(gref)->encode(text, true), direct->encode(text, true));
}

TEST(TokenizerRef, UnknownKindsAndMissingFilesAreErrors) {
  EXPECT_THROW(load_tokenizer({{"kind", "wordpiece"}, {"path", "x"}}), ConfigError);
  EXPECT_THROW(load_tokenizer({{"path", "x"}}), ConfigError);
  EXPECT_THROW(load_tokenizer({{"kind", "sentencepiece"}, {"path", "/nonexistent/t.model"}}),
               IoError);
}

TEST(TokenIds, ReadU32FilesAndRejectPartialIds) {
  TempDir dir;
  write_file(dir.file("ok.u32"), std::string("\x01\x00\x00\x00\xff\x01\x00\x00", 8));
  EXPECT_EQ(read_token_ids(dir.file("ok.u32")), (std::vector<int32_t>{1, 511}));
  write_file(dir.file("bad.u32"), std::string("\x01\x00\x00\x00\x02", 5));
  try {
    read_token_ids(dir.file("bad.u32"));
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.u32"), std::string::npos);
  }
}

// A tokenizer.json with a hand-made byte-level BPE vocabulary and a Llama-3 style Split.
TEST(HfJson, SmallByteLevelBpeVocabulary) {
  TempDir dir;
  nlohmann::json vocab = nlohmann::json::object();
  // The 256 byte symbols first (GPT-2 alphabet), then merged tokens.
  std::vector<std::string> alphabet;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab[s] = b;
    alphabet.push_back(s);
  }
  const std::string G = alphabet[' '];  // "Ġ"
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "o"}, {"lo", "w"}, {G, "l"}, {G + "l", "ow"}, {"e", "r"}, {"low", "er"}, {"o", "w"}};
  int id = 256;
  for (const auto& [a, b] : merges) vocab[a + b] = id++;
  nlohmann::json merges_json = nlohmann::json::array();
  for (const auto& [a, b] : merges) merges_json.push_back(a + " " + b);
  ASSERT_EQ(id, 263);
  nlohmann::json j = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 263, "content": "<|end|>", "special": true}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "behavior": "Isolated", "pattern": {}},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}})");
  // A Llama-3 style pattern, shortened to two contractions.
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] =
      "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  j["model"] = nlohmann::json::object();
  j["model"]["type"] = "BPE";
  j["model"]["vocab"] = vocab;
  j["model"]["merges"] = merges_json;
  write_file(dir.file("tokenizer.json"), j.dump());
  write_file(dir.file("tokenizer_config.json"), R"({"eos_token": "<|end|>"})");
  const auto tok = load_tokenizer_file(dir.file("tokenizer.json"));
  EXPECT_EQ(tok->vocab_size(), 264u);
  EXPECT_EQ(tok->eos_id(), 263);
  EXPECT_EQ(tok->bos_id(), -1);
  // "lower" -> lo (rank 0), low (1), er (4), lower (5). " low": l o (rank 0) wins over Ġ l
  // (rank 2), then lo w (1); Ġ + low has no merge, so "Ġlow" is never reached.
  const int32_t kLow = 257, kSpaceLow = 259, kLower = 261;
  EXPECT_EQ(tok->encode("lower low", true), (std::vector<int32_t>{kLower, ' ', kLow}));
  // Digits split in groups of at most three; the special token is matched literally; 'S after a
  // letter-run is its own piece thanks to (?i:'s).
  EXPECT_EQ(tok->encode("1234<|end|>'S", false),
            (std::vector<int32_t>{'1', '2', '3', '4', 263, '\'', 'S'}));
  const std::string text = "low\xC3\xA9 \n\n  lower<|end|>";
  EXPECT_EQ(tok->decode(tok->encode(text, false)), "low\xC3\xA9 \n\n  lower");
  EXPECT_EQ(tok->token_text(kSpaceLow), G + "low");
}

// Llama-2 style tokenizer.json: character-level BPE with <0xNN> byte fallback and the
// Prepend("▁") + Replace(" ", "▁") normalizer.
TEST(HfJson, CharacterBpeWithByteFallback) {
  TempDir dir;
  nlohmann::json vocab = nlohmann::json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) vocab[strprintf("<0x%02X>", b)] = 3 + b;
  const std::string sp = "\xE2\x96\x81";  // ▁
  const std::vector<std::string> pieces = {sp,       "a",  "b",        "c",
                                           sp + "a", "bc", sp + "abc", sp + "ab"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = static_cast<int>(259 + i);
  nlohmann::json j = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null})");
  j["model"] = nlohmann::json::object();
  j["model"]["type"] = "BPE";
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  j["model"]["vocab"] = vocab;
  // Ranks: b c, ▁ a, ▁a bc, ▁a b.
  j["model"]["merges"] = {"b c", sp + " a", sp + "a bc", sp + "a b"};
  write_file(dir.file("tokenizer.json"), j.dump());
  write_file(dir.file("tokenizer_config.json"),
             R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>"})");
  const auto tok = load_tokenizer_file(dir.file("tokenizer.json"));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const int32_t kSp = 259, kB = 261, kSpA = 263, kSpAbc = 265, kSpAb = 266;
  // "abc": ▁ a b c -> b c first (rank 0), then ▁ a, then ▁a bc.
  EXPECT_EQ(tok->encode("abc", true), (std::vector<int32_t>{1, kSpAbc}));
  // "ab a": ▁ab (rank 3), then ▁a; 'é' is not in the vocabulary -> bytes C3 A9.
  EXPECT_EQ(tok->encode("ab a\xC3\xA9", false),
            (std::vector<int32_t>{kSpAb, kSpA, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->encode(" b", false), (std::vector<int32_t>{kSp, kSp, kB}));
  EXPECT_EQ(tok->encode("a</s>", false), (std::vector<int32_t>{kSpA, 2}));
  EXPECT_EQ(tok->decode(tok->encode("ab a\xC3\xA9 c", true)), "ab a\xC3\xA9 c");
}

TEST(HfJson, MissingMergeTokenAndUnknownPreTokenizerAreNamed) {
  TempDir dir;
  nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", {"a b"}}}}};
  write_file(dir.file("tokenizer.json"), j.dump());
  try {
    load_tokenizer_file(dir.file("tokenizer.json"));
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("merge 0 'a b'"), std::string::npos) << e.what();
  }
  j["model"]["vocab"]["ab"] = 2;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  write_file(dir.file("tokenizer.json"), j.dump());
  try {
    load_tokenizer_file(dir.file("tokenizer.json"));
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pre-tokenizer 'Whitespace'"), std::string::npos)
        << e.what();
  }
}

// Llama-3's post-processor is a Sequence (ByteLevel, then TemplateProcessing with the BOS token):
// the BOS comes from the template inside it. (The template was once read through pointers into a
// destroyed copy of the list: ASan saw a use after free.)
TEST(HfJson, BosFromATemplateInsideASequencePostProcessor) {
  TempDir dir;
  nlohmann::json j = {
      {"added_tokens", {{{"id", 3}, {"content", "<|begin_of_text|>"}, {"special", true}}}},
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
      {"post_processor",
       {{"type", "Sequence"},
        {"processors",
         {{{"type", "ByteLevel"}, {"trim_offsets", false}},
          {{"type", "TemplateProcessing"},
           {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}}}}}};
  write_file(dir.file("tokenizer.json"), j.dump());
  const auto tok = load_tokenizer_file(dir.file("tokenizer.json"));
  EXPECT_EQ(tok->bos_id(), 3);
  EXPECT_EQ(tok->encode("ab", true), (std::vector<int32_t>{3, 2}));
}

// Fields of another type than tokenizers writes, and ids that would size a huge table, are
// FormatErrors naming the file (not nlohmann's exceptions, not a 64 GiB allocation).
TEST(HfJson, FieldsOfTheWrongTypeAndHugeIdsAreFormatErrors) {
  TempDir dir;
  const nlohmann::json ok = {
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
  std::vector<std::pair<std::string, nlohmann::json>> cases;
  cases.emplace_back("top level", nlohmann::json::array({1}));
  nlohmann::json j = ok;
  j["model"]["byte_fallback"] = 0;
  cases.emplace_back("byte_fallback", j);
  j = ok;
  j["added_tokens"] = {{{"id", 3}, {"content", "x"}, {"special", 1}}};
  cases.emplace_back("special", j);
  j = ok;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", "yes"}};
  cases.emplace_back("add_prefix_space", j);
  j = ok;
  j["model"]["vocab"]["c"] = 2147483647;
  cases.emplace_back("huge id", j);
  for (const auto& [what, c] : cases) {
    write_file(dir.file("tokenizer.json"), c.dump());
    try {
      load_tokenizer_file(dir.file("tokenizer.json"));
      ADD_FAILURE() << what << ": no error";
    } catch (const FormatError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(dir.file("tokenizer.json")), std::string::npos) << what << ": " << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << what << ": " << m;
    }
  }
}

TEST(Performance, EncodesAMegabyteWellUnderASecond) {
  DSQ_REQUIRE_SHARED(shared);
  const auto spm = load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  const auto bpe = load_tokenizer_file(shared + "/data/tokenizer-tests/ggml-vocab-gpt-2.gguf");
  const std::string text = slurp(shared + "/data/wikitext-2-raw-test.txt").substr(0, 1 << 20);
  for (const auto* tok : {spm.get(), bpe.get()}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: 1 MiB -> %zu ids in %.3f s\n", tok->description().c_str(), ids.size(), s);
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(s, 1.0);  // the bound is for optimized builds only
#endif
  }
}

}  // namespace
}  // namespace dsq::text
