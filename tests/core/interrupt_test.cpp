// The interrupt handlers (lib/core/interrupt.h), in forked children so that the signals and the
// process-wide handlers stay out of the test runner.
#include "lib/core/interrupt.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/test_util.h"

namespace dsq::interrupt {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

// Runs `body` in a forked child; returns its wait status.
int in_child(const std::function<void()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

TEST(Interrupt, SignalRemovesRegisteredFilesAndDirectoriesThenDiesByIt) {
  testing::TempDir tmp;
  const fs::path file = tmp.file("out.dsq.tmp"), kept = tmp.file("done.json.tmp");
  const fs::path dir = tmp.file("hf.tmp"), other = tmp.file("unrelated.txt");
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    touch(file);
    touch(kept);
    touch(other);
    fs::create_directory(dir);
    touch(dir / "model.safetensors");
    touch(dir / ".dsq-partial");
    const int st = in_child([&] {
      install_handlers();
      RemoveOnSignal f(file.string()), d(dir.string(), /*directory=*/true);
      RemoveOnSignal released(kept.string());
      released.release();  // renamed into place, say: no longer ours to remove
      if (registered_count() != 2) ::_exit(3);
      ::raise(sig);
      ::_exit(4);  // not reached: the handler re-raises with the default action
    });
    ASSERT_TRUE(WIFSIGNALED(st)) << sig << " status " << st;
    EXPECT_EQ(WTERMSIG(st), sig);
    EXPECT_FALSE(fs::exists(file)) << sig;
    EXPECT_FALSE(fs::exists(dir)) << sig;
    EXPECT_TRUE(fs::exists(kept)) << sig;
    EXPECT_TRUE(fs::exists(other)) << sig;
  }
}

TEST(Interrupt, GuardsReleaseTheirSlotsAndMoveSafely) {
  testing::TempDir tmp;
  const int before = registered_count();
  {
    RemoveOnSignal a(tmp.file("a"));
    RemoveOnSignal b(tmp.file("b"), true);
    EXPECT_EQ(registered_count(), before + 2);
    RemoveOnSignal c(std::move(a));
    EXPECT_EQ(registered_count(), before + 2);
    c = std::move(b);  // c's own slot (a's path) is released
    EXPECT_EQ(registered_count(), before + 1);
    RemoveOnSignal too_long(std::string(5000, 'x'));  // not watched, no failure
    EXPECT_EQ(registered_count(), before + 1);
  }
  EXPECT_EQ(registered_count(), before);
  // More paths than slots: the extra ones are simply not watched.
  std::vector<RemoveOnSignal> many;
  for (int i = 0; i < 300; ++i) many.emplace_back(tmp.file("m" + std::to_string(i)));
  EXPECT_EQ(registered_count(), 256);
  many.clear();
  EXPECT_EQ(registered_count(), before);
}

TEST(Interrupt, IgnoredSignalsStayIgnoredAndChildrenLeaveFilesAlone) {
  testing::TempDir tmp;
  const fs::path file = tmp.file("out.tmp");
  touch(file);
  // SIGHUP ignored at start (nohup): still ignored, nothing removed.
  int st = in_child([&] {
    ::signal(SIGHUP, SIG_IGN);
    install_handlers();
    RemoveOnSignal f(file.string());
    ::raise(SIGHUP);
    ::_exit(7);
  });
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 7);
  EXPECT_TRUE(fs::exists(file));
  // A process forked after install (libhdf5's isolated reader, say) dies by the signal and leaves
  // its parent's temporary files alone.
  st = in_child([&] {
    install_handlers();
    RemoveOnSignal f(file.string());
    const int inner = in_child([] { ::raise(SIGTERM); });
    ::_exit(WIFSIGNALED(inner) && WTERMSIG(inner) == SIGTERM ? 8 : 9);
  });
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 8);
  EXPECT_TRUE(fs::exists(file));
}

}  // namespace
}  // namespace dsq::interrupt
