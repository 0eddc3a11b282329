// dsq: the command-line entry point. Registers subcommands from a table and maps errors to exit
// codes: 0 success, 1 input error (or a failed check), 2 usage error.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "lib/core/dist.h"
#include "lib/core/error.h"
#include "lib/core/interrupt.h"
#include "lib/core/log.h"
#include "lib/core/memory.h"
#include "lib/core/parallel.h"
#include "tools/commands.h"

namespace {

const dsq::tools::Command* const kCommands[] = {
    // Each cmd_<name>.cpp adds its row here.
    &dsq::tools::kConvertCommand,
    &dsq::tools::kExportCommand,
    &dsq::tools::kInspectCommand,
    &dsq::tools::kQuantizeCommand,
    &dsq::tools::kCheckCommand,
    &dsq::tools::kReportCommand,
    &dsq::tools::kEvalCommand,
    &dsq::tools::kGenerateCommand,
    &dsq::tools::kPruneCommand,
    &dsq::tools::kSparsifyCommand,
    &dsq::tools::kDistillCommand,
    &dsq::tools::kTrainCommand,
};

// OpenBLAS 0.3.21 does not recognise some virtualised Xeons and falls back to its SSE3 "Prescott"
// kernels, 3-7x slower than the AVX-512/AVX2 ones (bench/RESULTS.md). It reads OPENBLAS_CORETYPE
// only when the library loads, so when the user has not set it, set it from the CPU's features and
// re-execute once. DSQ_NO_REEXEC=1 disables this.
void ensure_blas_coretype(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("DSQ_NO_REEXEC")) return;
  const char* core = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    core = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    core = "Haswell";
  if (!core) return;
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on with the defaults
}

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_coretype(argv);
  dsq::configure_malloc();
  CLI::App app{"dsq: offline model preparation for LLMs (convert, quantize, prune, eval)", "dsq"};
  app.set_version_flag("--version", std::string("dsq ") + DSQ_VERSION);
  app.require_subcommand(1);
  bool quiet = false, verbose = false;
  int threads = 0;
  app.add_flag("-q,--quiet", quiet, "No progress bars or info lines")->configurable(false);
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  app.add_option("-t,--threads", threads, "Threads for OpenMP and BLAS (0 = all cores)")
      ->check(dsq::tools::at_least(0));
  app.fallthrough();

  const dsq::tools::Command* chosen = nullptr;
  for (const auto* c : kCommands) {
    CLI::App* sub = app.add_subcommand(c->name, c->help);
    c->add_options(*sub);
    sub->callback([c, &chosen] { chosen = c; });
  }

  std::string cmd_name = "dsq";
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // A usage error is one line like every other error (CLI11's own print adds a second line),
    // naming the subcommand whose flags were being parsed.
    std::string name = "dsq";
    for (const CLI::App* s = &app; !s->get_subcommands().empty();) {
      s = s->get_subcommands().front();
      name += " " + s->get_name();
    }
    std::string what = e.what();
    if (name == "dsq") {  // no command was recognised: name the word taken for one
      for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-t" || a == "--threads") ++i;  // the global flag's value
        else if (!a.starts_with("-")) {
          what = "unknown command '" + a + "': the commands are";
          for (const auto* c : kCommands) what += std::string(c == kCommands[0] ? " " : ", ") + c->name;
          break;
        }
      }
    }
    std::fprintf(stderr, "%s: error: %s (see '%s --help')\n", name.c_str(),
                 dsq::one_line_message(what).c_str(), name.c_str());
    return 2;
  }
  if (chosen) cmd_name = std::string("dsq ") + chosen->name;
  dsq::set_quiet(quiet);
  if (verbose) dsq::set_log_level(dsq::LogLevel::kDebug);
  dsq::set_num_threads(threads);
  // Under mpirun every rank runs this; a rank that fails ends all of them (the others may be
  // waiting in a broadcast), naming itself.
  const auto fail = [&](int code, const char* what) {
    if (dsq::dist::size() > 1) {
      std::fprintf(stderr, "%s: error: rank %d of %d: %s\n", cmd_name.c_str(), dsq::dist::rank(),
                   dsq::dist::size(), what);
      std::fflush(stderr);
      dsq::dist::abort_all(code);
    }
    std::fprintf(stderr, "%s: error: %s\n", cmd_name.c_str(), what);
    dsq::dist::finalize();  // mpirun -n 1: a clean exit, not "finalize was not called"
    return code;
  };
  try {
    dsq::dist::init(&argc, &argv);
    dsq::interrupt::install_handlers();  // after MPI's own: an interrupted run removes its .tmp
    if (dsq::dist::rank() > 0) {  // rank 0 speaks for the run; errors still name their rank
      dsq::set_quiet(true);
      dsq::set_log_level(dsq::LogLevel::kError);
    }
    if (dsq::dist::size() > 1 && (!chosen || std::string(chosen->name) != "quantize"))
      throw dsq::UsageError("only dsq quantize runs under mpirun with more than one process");
    const int code = chosen ? chosen->run() : 2;
    dsq::dist::finalize();
    return code;
  } catch (const dsq::UsageError& e) {
    return fail(2, e.what());
  } catch (const dsq::Error& e) {
    return fail(1, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
}
