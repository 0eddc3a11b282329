// Hostile and mistaken inputs through the built binary, one test per class of failure found by
// fuzzing and by trying the tool as a new user (issue 13). Every input is generated here from the
// real stories260K files; each case asserts a one-line error, exit 1 (bad input) or 2 (usage), no
// crash, no hang, no leftover output, and inputs left byte for byte unchanged.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/dsq/dsq_format.h"
#include "lib/core/hash.h"
#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::read_text;
using testing::run_dsq;
using testing::TempDir;

void write_text(const std::string& path, const std::string& s) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
}

// A failed run: one line on stderr, the given exit code, no signal.
void expect_error(const CliRun& r, int code, const std::string& needle, const std::string& what) {
  EXPECT_EQ(r.code, code) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << "\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << "\n" << r.err;
}

// A .dsq file with its JSON header replaced by `header` (sizes and the index checksum redone).
void replace_dsq_header(const std::string& in, const std::string& out, const std::string& header) {
  using namespace formats::dsqfile;
  std::string f = read_text(in);
  Preamble p;
  std::memcpy(&p, f.data(), sizeof p);
  IndexHeader ih;
  std::memcpy(&ih, f.data() + p.index_offset, sizeof ih);
  const size_t keep = sizeof(IndexHeader) + ih.n_tensors * sizeof(TensorRecord) + ih.names_bytes;
  std::string index = f.substr(p.index_offset, keep) + header;
  ih.json_bytes = header.size();
  std::memcpy(index.data(), &ih, sizeof ih);
  p.index_bytes = index.size();
  p.index_checksum = xxh64(index.data(), index.size());
  f = f.substr(0, p.index_offset) + index;
  p.file_bytes = f.size();
  std::memcpy(f.data(), &p, sizeof p);
  write_text(out, f);
}

nlohmann::json dsq_header(const std::string& path) {
  using namespace formats::dsqfile;
  const std::string f = read_text(path);
  Preamble p;
  std::memcpy(&p, f.data(), sizeof p);
  IndexHeader ih;
  std::memcpy(&ih, f.data() + p.index_offset, sizeof ih);
  return nlohmann::json::parse(f.substr(f.size() - ih.json_bytes));
}

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

class CliRobustness : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = ::dsq::testing::shared_dir();
    if (shared_.empty()) {
      if (::dsq::testing::in_ci()) FAIL() << "../shared is missing but CI=true";
      GTEST_SKIP() << "../shared not found";
    }
    hf_ = shared_ + "/models/stories260K/hf";
    ids_ = shared_ + "/data/tinystories-eval.stories260K.u32";
    calib_ = shared_ + "/data/tinystories-calib.stories260K.u32";
    base_ = tmp_.file("base.dsq");
    ASSERT_EQ(run_dsq(tmp_, "-q convert " + hf_ + " -o " + base_).code, 0);
  }
  // A copy of the HF directory whose config.json / model.safetensors can be edited.
  std::string hf_copy(const std::string& name) {
    const std::string d = tmp_.file(name);
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(hf_)) fs::copy_file(e.path(), d + "/" + e.path().filename().string());
    return d;
  }
  std::string calib(int n = 4) const {
    return " --calib " + calib_ + " --calib-samples " + std::to_string(n) + " --calib-len 64";
  }
  TempDir tmp_;
  std::string shared_, hf_, ids_, calib_, base_;
};

// Class 1: deeply nested JSON in every JSON input is a one-line error, not a stack overflow.
TEST_F(CliRobustness, DeeplyNestedJsonIsRejected) {
  nlohmann::json h = dsq_header(base_);
  h["recipe"] = "__X__";
  std::string text = h.dump();
  text.replace(text.find("\"__X__\""), 7, nested(1000000));
  replace_dsq_header(base_, tmp_.file("deep.dsq"), text);
  for (const char* cmd : {"inspect", "eval"}) {
    const CliRun r = run_dsq(tmp_, std::string(cmd) + " " + tmp_.file("deep.dsq") +
                                       (std::string(cmd) == "eval" ? " --tokens " + ids_ : ""));
    expect_error(r, 1, "JSON nested deeper than 64 levels", cmd);
  }
  // A safetensors header's shape, and a config.json value.
  const std::string st = hf_copy("st");
  {
    std::string f = read_text(st + "/model.safetensors");
    uint64_t n;
    std::memcpy(&n, f.data(), 8);
    std::string header = f.substr(8, n);
    const size_t at = header.find("\"shape\":[") + 8;
    header.replace(at, header.find(']', at) - at + 1, nested(100000));
    const uint64_t m = header.size();
    std::string out(reinterpret_cast<const char*>(&m), 8);
    write_text(st + "/model.safetensors", out + header + f.substr(8 + n));
  }
  expect_error(run_dsq(tmp_, "inspect " + st), 1, "JSON nested deeper", "safetensors shape");
  const std::string cfg = hf_copy("cfg");
  nlohmann::json c = nlohmann::json::parse(read_text(cfg + "/config.json"));
  c["hidden_size"] = "__X__";
  std::string ct = c.dump();
  ct.replace(ct.find("\"__X__\""), 7, nested(100000));
  write_text(cfg + "/config.json", ct);
  expect_error(run_dsq(tmp_, "inspect " + cfg), 1, "JSON nested deeper", "config.json");
  // A value of the wrong type within the limit is quoted in a short excerpt only.
  c["hidden_size"] = nlohmann::json::parse(nested(60));
  write_text(cfg + "/config.json", c.dump());
  const CliRun r = run_dsq(tmp_, "inspect " + cfg);
  expect_error(r, 1, "field 'hidden_size': expected an integer, found [[[[", "excerpt");
  EXPECT_LT(r.err.size(), 300u);
}

// Well-formed JSON with values of another type than dsq writes, in inputs that commands follow:
// a FormatError naming the file, not the JSON library's exception without a file name.
TEST_F(CliRobustness, JsonFieldsOfTheWrongTypeNameTheFile) {
  // A .dsq whose tokenizer reference has the wrong types: refused on open by every command.
  nlohmann::json h = dsq_header(base_);
  h["tokenizer"]["kind"] = 5;
  replace_dsq_header(base_, tmp_.file("tok.dsq"), h.dump());
  for (const std::string& args : {"inspect " + tmp_.file("tok.dsq"),
                                 "convert " + tmp_.file("tok.dsq") + " -o " + tmp_.file("c.dsq")})
    expect_error(run_dsq(tmp_, args), 1, "tok.dsq': JSON header: 'tokenizer' must be an object", args);
  EXPECT_FALSE(fs::exists(tmp_.file("c.dsq")));
  // check --from-report of something that is not a report object.
  const std::string budget = tmp_.file("b.json"), rep = tmp_.file("r.json");
  write_text(budget, R"({"limits": {"max_kld_mean": 1.0}})");
  write_text(rep, "[1]");
  expect_error(run_dsq(tmp_, "check --from-report " + rep + " --budget " + budget + " --json " +
                                 tmp_.file("o.json")),
               1, "r.json': not an eval report", "from-report");
  EXPECT_FALSE(fs::exists(tmp_.file("o.json")));
}

// Class 2: a .dsq without a config is refused at open by every command, with the same message.
TEST_F(CliRobustness, DsqWithoutConfigIsRefusedByEveryCommand) {
  nlohmann::json h = dsq_header(base_);
  h.erase("config");
  const std::string f = tmp_.file("nocfg.dsq");
  replace_dsq_header(base_, f, h.dump());
  const std::string out = " -o " + tmp_.file("o.dsq");
  for (const std::string& args :
       {"inspect " + f, "convert " + f + out, "quantize " + f + out, "eval " + f + " --tokens " + ids_,
        "generate " + f + " -p Once", "prune " + f + out + " --ffn 0.5 --importance magnitude",
        "sparsify " + f + out + " --topk 0.5" + calib()}) {
    expect_error(run_dsq(tmp_, args), 1, "has no 'config': not a model file", args);
    EXPECT_FALSE(fs::exists(tmp_.file("o.dsq")));
  }
}

// Class 3: a corrupt statistics file never crashes dsq (libhdf5 runs it in a child first) and
// leaves nothing behind; the corrected rerun starts cleanly.
TEST_F(CliRobustness, CorruptStatisticsFileIsAnErrorWithoutLeftovers) {
  const std::string stats = tmp_.file("s.h5");
  ASSERT_EQ(run_dsq(tmp_, "-q quantize " + hf_ + " -o " + tmp_.file("g.dsq") +
                              " --method gptq --bits 4 --group 32" + calib() + " --save-stats " + stats)
                .code,
            0);
  const std::string good = read_text(stats);
  const std::string out = tmp_.file("o.dsq");
  int crashes_avoided = 0;
  // Offsets 816, 2448 and 2496 crashed libhdf5 itself before the isolation (issue 13).
  for (size_t off : {size_t{816}, size_t{2448}, size_t{2496}, size_t{96}, size_t{1200}, size_t{3000}}) {
    std::string bad = good;
    std::memset(bad.data() + off, 0xff, 8);
    write_text(tmp_.file("f.h5"), bad);
    const CliRun r = run_dsq(tmp_, "-q quantize " + hf_ + " -o " + out +
                                       " --method gptq --bits 4 --group 32 --load-stats " + tmp_.file("f.h5"));
    ASSERT_NE(r.code, -1) << "offset " << off << ": killed by a signal";
    if (r.code == 0) {  // bytes nothing reads: a complete output, removed for the next offset
      fs::remove(out);
      continue;
    }
    EXPECT_EQ(r.code, 1) << off << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    crashes_avoided += r.err.find("libhdf5 crashed") != std::string::npos;
    for (const char* left : {".partial", ".tmp", ""})
      EXPECT_FALSE(fs::exists(out + left)) << off << " left " << out << left;
  }
  EXPECT_GE(crashes_avoided, 1);
}

// Class 4: hostile layer counts are rejected before anything loops over them.
TEST_F(CliRobustness, HugeLayerCountsFailFast) {
  nlohmann::json h = dsq_header(base_);
  h["config"]["n_layers"] = int64_t{1} << 40;
  replace_dsq_header(base_, tmp_.file("nl.dsq"), h.dump());
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(run_dsq(tmp_, "inspect " + tmp_.file("nl.dsq")), 1, "layers but there are only",
               ".dsq n_layers");
  const std::string cfg = hf_copy("nl");
  nlohmann::json c = nlohmann::json::parse(read_text(cfg + "/config.json"));
  c["num_hidden_layers"] = int64_t{1} << 31;
  write_text(cfg + "/config.json", c.dump());
  expect_error(run_dsq(tmp_, "inspect " + cfg), 1, "layers but there are only", "config.json");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// Class 5: no output flag of any command may overwrite an input (also through a symlink).
TEST_F(CliRobustness, NoCommandOverwritesAnInput) {
  const std::string m = tmp_.file("m.dsq"), link = tmp_.file("link.dsq"), ids = tmp_.file("ids.u32");
  fs::copy_file(base_, m);
  fs::create_symlink(m, link);
  fs::copy_file(ids_, ids);
  const std::string budget = tmp_.file("budget.json"), ev = tmp_.file("ev.json");
  write_text(budget, R"({"limits": {"max_kld_mean": 1.0}})");
  const std::string text = tmp_.file("story.txt");
  write_text(text, "Once upon a time there was a little dog.\n");
  ASSERT_EQ(run_dsq(tmp_, "-q eval " + m + " --tokens " + ids + " --ctx 64 --json " + ev).code, 0);
  const std::string before_m = read_text(m), before_ids = read_text(ids),
                    before_b = read_text(budget), before_ev = read_text(ev), before_t = read_text(text);
  const std::string c = calib();
  const std::string cases[] = {
      "convert " + m + " -o " + m,
      "convert " + link + " -o " + m,
      "convert " + m + " -o " + tmp_.file("x.dsq") + " --json " + m,
      "inspect " + m + " --json " + m,
      "quantize " + m + " -o " + m,
      "quantize " + link + " -o " + m,
      "quantize " + m + " -o " + tmp_.file("x.dsq") + " --json " + link,
      "quantize " + m + " -o " + tmp_.file("x.dsq") + " --method gptq --calib " + ids +
          " --save-stats " + m,
      "quantize " + m + " -o " + ids + " --method gptq --calib " + ids,
      "prune " + m + " -o " + m + " --ffn 0.5 --importance magnitude",
      "prune " + m + " -o " + tmp_.file("x.dsq") + " --ffn 0.5 --importance magnitude --json " + m,
      "sparsify " + m + " -o " + link + " --topk 0.5" + c,
      "sparsify " + m + " -o " + tmp_.file("x.dsq") + " --topk 0.5 --calib " + ids + " --json " + ids,
      "eval " + m + " --tokens " + ids + " --json " + m,
      "eval " + m + " --tokens " + ids + " --json " + ids,
      "eval " + m + " --tokens " + ids + " --ref " + link + " --json " + link,
      "report " + ev + " -o " + ev,
      "check " + m + " --ref " + m + " --budget " + budget + " --tokens " + ids + " --junit " + budget,
      "check " + m + " --ref " + m + " --budget " + budget + " --tokens " + ids + " --json " + m,
      "check --from-report " + ev + " --budget " + budget + " --json " + ev,
      "export " + m + " -o " + m,
      "export " + link + " -o " + tmp_.file("x.dsq") + " --json " + m,
      "generate " + m + " -p hi -n 2 --json " + link,
      "distill " + m + " --teacher " + link + " --data " + ids + " -o " + m,
      "distill " + m + " --teacher " + m + " --data " + ids + " -o " + link,
      "distill " + m + " --teacher " + m + " --data " + ids + " -o " + ids,
      "distill " + m + " --teacher " + m + " --data " + ids + " -o " + tmp_.file("x.dsq") + " --json " + m,
      "distill " + m + " --teacher " + m + " --data " + ids + " --heldout-data " + budget + " -o " +
          tmp_.file("x.dsq") + " --json " + budget,
      "train --text " + text + " -o " + text,
      "train --text " + text + " -o " + tmp_.file("x.dsq") + " --json " + text,
  };
  for (const auto& args : cases) {
    expect_error(run_dsq(tmp_, args), 2, "would overwrite the input", args);
    EXPECT_FALSE(fs::exists(tmp_.file("x.dsq"))) << args;
  }
  EXPECT_TRUE(read_text(m) == before_m);
  EXPECT_TRUE(read_text(ids) == before_ids);
  EXPECT_TRUE(read_text(budget) == before_b);
  EXPECT_TRUE(read_text(ev) == before_ev);
  EXPECT_TRUE(read_text(text) == before_t);
  EXPECT_TRUE(fs::is_symlink(link));
  // An export to a Hugging Face directory refuses every existing path, the input's too.
  expect_error(run_dsq(tmp_, "export " + m + " -o " + link + " --hf float"), 2, "exists", "--hf");
  EXPECT_TRUE(read_text(m) == before_m);
  // Two outputs on one file.
  expect_error(run_dsq(tmp_, "quantize " + m + " -o " + tmp_.file("x.dsq") + " --json " + tmp_.file("x.dsq")),
               2, "is given as both -o and --json", "-o and --json");
  expect_error(run_dsq(tmp_, "quantize " + m + " -o " + tmp_.file("x.dsq") + " --method gptq --calib " +
                                 ids + " --json " + tmp_.file("s.h5") + " --save-stats " + tmp_.file("s.h5")),
               2, "is given as both", "two outputs");
}

// A work directory (OUT.partial/) that was edited or damaged: --resume refuses it in one line
// naming the file, and leaves it for the user to inspect or delete.
TEST_F(CliRobustness, DamagedWorkDirectoryIsAnErrorNamingTheFile) {
  const std::string flags = " --method gptq --bits 4 --group 32 --sym" + calib(4);
  const std::string out = tmp_.file("cut.dsq"), work = out + ".partial";
  ::setenv("DSQ_PIPELINE_KILL", "during:2:TERM", 1);
  const CliRun r = run_dsq(tmp_, "-q quantize " + hf_ + " -o " + out + flags);
  ::unsetenv("DSQ_PIPELINE_KILL");
  ASSERT_NE(r.code, 0);
  ASSERT_TRUE(fs::exists(work + "/blk.0.dsq")) << r.err;
  const std::string state = read_text(work + "/state.json"), blk0 = read_text(work + "/blk.0.dsq");
  const std::string resume = "-q quantize " + hf_ + " -o " + out + flags + " --resume";
  nlohmann::json s = nlohmann::json::parse(state);
  s["completed"] = "two";
  write_text(work + "/state.json", s.dump());
  expect_error(run_dsq(tmp_, resume), 1, "state.json': not a pipeline state file", "completed");
  write_text(work + "/state.json", state);
  const std::string orig = tmp_.file("blk.0.orig");
  write_text(orig, blk0);
  nlohmann::json h = dsq_header(orig);
  nlohmann::json bad_extra = h["partial"]["linears"];
  for (auto& [name, rep] : bad_extra.items()) rep["extra"]["sensitivity"] = {{"options", 5}};
  for (const auto& [field, value] : {std::pair<std::string, nlohmann::json>{"linears", nlohmann::json::object()},
                                     {"layer", "0"}, {"linears", bad_extra}}) {
    nlohmann::json edited = h;
    edited["partial"][field] = value;
    replace_dsq_header(orig, work + "/blk.0.dsq", edited.dump());
    expect_error(run_dsq(tmp_, resume), 1, "blk.0.dsq': not the pipeline result of block 0", field);
    EXPECT_FALSE(fs::exists(out)) << field;
    EXPECT_TRUE(fs::exists(work)) << field;
  }
  write_text(work + "/blk.0.dsq", blk0);
  EXPECT_EQ(run_dsq(tmp_, resume).code, 0);  // the undamaged directory resumes
}

// An interrupted run (Ctrl-C, SIGTERM from a scheduler or from mpirun) removes its temporary
// output, keeps the work directory, says so in one line, dies by the signal, and --resume then
// writes the same bytes as an uninterrupted run.
TEST_F(CliRobustness, InterruptedQuantizeRemovesItsTemporaryOutputAndResumes) {
  const std::string flags = " --method gptq --bits 4 --group 32 --sym" + calib(8);
  const std::string whole = tmp_.file("whole.dsq");
  ASSERT_EQ(run_dsq(tmp_, "-q quantize " + hf_ + " -o " + whole + flags).code, 0);
  for (const char* sig : {"TERM", "INT"}) {
    for (const std::string ext : {".dsq", ".gguf"}) {
      const std::string out = tmp_.file(std::string("cut_") + sig + ext);
      const std::string what = std::string(sig) + " " + ext;
      ::setenv("DSQ_PIPELINE_KILL", (std::string("during:2:") + sig).c_str(), 1);
      const CliRun r = run_dsq(tmp_, "-q quantize " + hf_ + " -o " + out + flags);
      ::unsetenv("DSQ_PIPELINE_KILL");
      EXPECT_NE(r.code, 0) << what;
      // (the shell may add its own "Terminated" line)
      EXPECT_EQ(r.err.rfind("dsq: interrupted; temporary outputs removed\n", 0), 0u) << what << r.err;
      EXPECT_FALSE(fs::exists(out + ".tmp")) << what;
      EXPECT_FALSE(fs::exists(out)) << what;
      EXPECT_TRUE(fs::exists(out + ".partial/state.json")) << what;
      const CliRun again = run_dsq(tmp_, "-q quantize " + hf_ + " -o " + out + flags + " --resume");
      ASSERT_EQ(again.code, 0) << what << again.err;
      EXPECT_FALSE(fs::exists(out + ".partial")) << what;
      if (ext == ".dsq") {
        EXPECT_TRUE(read_text(out) == read_text(whole)) << what;
      }
    }
  }
}

// Class 6: nothing is half done. Destinations are checked before the work, a bad calibration or
// statistics file leaves no OUT.partial/, and the corrected rerun starts.
TEST_F(CliRobustness, BadInputsOrDestinationsFailBeforeAnyWork) {
  const std::string out = tmp_.file("q.dsq");
  const std::string gptq = "-q quantize " + hf_ + " -o " + out + " --method gptq --bits 4 --group 32";
  expect_error(run_dsq(tmp_, gptq + " --calib " + tmp_.file("none.u32")), 1,
               "none.u32': cannot open", "missing calib");
  expect_error(run_dsq(tmp_, gptq + " --load-stats " + tmp_.file("none.h5")), 1, "none.h5'",
               "missing stats");
  for (const std::string flag : {"--json", "--save-stats"}) {
    const auto t0 = std::chrono::steady_clock::now();
    expect_error(run_dsq(tmp_, gptq + calib(16) + " " + flag + " " + tmp_.file("nodir/x")), 2,
                 "does not exist", flag);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0)
        << flag << " was checked only after the work";
  }
  expect_error(run_dsq(tmp_, "eval " + hf_ + " --tokens " + ids_ + " --json " + tmp_.file("nodir/e.json")),
               2, "does not exist", "eval --json");
  expect_error(run_dsq(tmp_, "check " + hf_ + " --ref " + hf_ + " --budget " +
                                 std::string(DSQ_SOURCE_DIR) + "/examples/budget.json --tokens " +
                                 ids_ + " --junit " + tmp_.file("nodir/j.xml")),
               2, "does not exist", "check --junit");
  expect_error(run_dsq(tmp_, gptq + " --calib " + calib_ + " --calib-len 2048"), 2,
               "exceeds the model's context length 512", "calib-len");
  for (const char* left : {".partial", ".tmp", ""}) EXPECT_FALSE(fs::exists(out + left)) << left;
  EXPECT_EQ(run_dsq(tmp_, gptq + calib()).code, 0);  // the corrected run starts cleanly
  // A model output no writer takes fails before the training (which starts by creating
  // OUT.partial/), not after it.
  const std::string text = tmp_.file("story.txt"), bad = tmp_.file("student.txt");
  write_text(text, std::string(3000, 'a') + "\n");
  for (const std::string& args :
       {"train --text " + text + " -o " + bad + " --steps 2",
        "distill " + base_ + " --teacher " + base_ + " --data " + ids_ + " -o " + bad + " --steps 2",
        "prune " + base_ + " -o " + bad + " --ffn 0.5 --importance magnitude",
        "quantize " + base_ + " -o " + bad + " --method gptq" + calib()}) {
    expect_error(run_dsq(tmp_, args), 2, "cannot write '.txt' files", args);
    for (const char* left : {".partial", ".tmp", ""}) EXPECT_FALSE(fs::exists(bad + left)) << args << left;
  }
}

// Class 7: the smaller ones.
TEST_F(CliRobustness, EverydayMistakesGetClearMessages) {
  expect_error(run_dsq(tmp_, "inspect " + tmp_.file("nosuch.dsq")), 1, "no such file or directory",
               "missing file");
  const std::string notok = tmp_.file("notok");
  fs::create_directories(notok);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(hf_ + "/" + f, notok + "/" + f);
  const CliRun g = run_dsq(tmp_, "generate " + notok + " -p Once");
  expect_error(g, 1, "has no tokenizer (convert it from a directory with tokenizer.json", "generate");
  EXPECT_EQ(g.err.find("--tokens"), std::string::npos) << g.err;
  const CliRun t = run_dsq(tmp_, "-t -1 inspect " + base_);
  expect_error(t, 2, "must be at least 0, got -1", "threads");
  EXPECT_LT(t.err.size(), 200u) << t.err;
  // The flag parser's errors are one line too, naming the command and its --help.
  expect_error(run_dsq(tmp_, "quantize " + base_ + " -o " + tmp_.file("x.dsq") + " --bits"), 2,
               "dsq quantize: error: --bits: 1 required INT missing (see 'dsq quantize --help')",
               "flag without its value");
  expect_error(run_dsq(tmp_, "eval " + base_ + " --bogus"), 2,
               "dsq eval: error: The following argument was not expected: --bogus", "unknown flag");
  expect_error(run_dsq(tmp_, "-t 2 quantise " + base_), 2,
               "dsq: error: unknown command 'quantise': the commands are convert, export", "typo");
  expect_error(run_dsq(tmp_, "eval " + base_ + " --tokens " + ids_ + " --max-tokens -5"), 2,
               "--max-tokens must not be negative", "max-tokens");
  for (const char* temp : {"nan", "inf"})
    expect_error(run_dsq(tmp_, "generate " + base_ + " -p Once --temp " + temp), 2,
                 "--temp must be a finite number", temp);
  const CliRun n = run_dsq(tmp_, "generate " + base_ + " -p Once -n 2000");
  EXPECT_EQ(n.code, 0) << n.err;
  EXPECT_NE(n.err.find("leaves room for"), std::string::npos) << n.err;
  const std::string q = tmp_.file("q.dsq");
  ASSERT_EQ(run_dsq(tmp_, "-q quantize " + base_ + " -o " + q + " --bits 4 --group 32").code, 0);
  expect_error(run_dsq(tmp_, "quantize " + q + " -o " + tmp_.file("rq.dsq") + " --bits 2 --group 32"), 1,
               "already quantized (int4_asym_g32)", "requantize");
  EXPECT_FALSE(fs::exists(tmp_.file("rq.dsq")));
  expect_error(run_dsq(tmp_, "eval " + base_ + " --text " + base_), 1, "not a text file", "binary text");
  expect_error(run_dsq(tmp_, "quantize " + base_ + " -o " + tmp_.file("x.dsq") + " --calib " + calib_), 2,
               "--calib does not apply to --method rtn", "calib with rtn");
  // -q leaves stdout empty for commands that write files.
  for (const std::string& args : {"-q convert " + base_ + " -o " + tmp_.file("c.dsq"),
                                 "-q quantize " + base_ + " -o " + tmp_.file("c2.dsq"),
                                 "-q prune " + base_ + " -o " + tmp_.file("c3.dsq") +
                                     " --ffn 0.25 --importance magnitude"}) {
    const CliRun r = run_dsq(tmp_, args);
    EXPECT_EQ(r.code, 0) << args << r.err;
    EXPECT_EQ(r.out, "") << args;
  }
  // --json - writes the report to stdout in every command that has one.
  const CliRun j = run_dsq(tmp_, "-q convert " + base_ + " -o " + tmp_.file("d.dsq") + " --json -");
  EXPECT_EQ(nlohmann::json::parse(j.out)["tensors"], 47) << j.out;
}

}  // namespace
}  // namespace dsq
