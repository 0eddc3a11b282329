#include "lib/core/interrupt.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "lib/core/log.h"

namespace dsq::interrupt {

namespace {

enum SlotState : int { kFree = 0, kFilling = 1, kFile = 2, kDir = 3 };

struct Slot {
  std::atomic<int> state{kFree};
  char path[4096];
};

constexpr int kSlots = 256;
Slot g_slots[kSlots];
std::atomic<pid_t> g_owner{0};  // the process whose temporary files these are
std::atomic<bool> g_installed{false};
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

void write_stderr(const char* s) {
  const ssize_t n = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)n;
}

// Removes the files directly in `dir`, then `dir`, with system calls only (getdents64 rather than
// readdir, which may allocate). A directory with subdirectories stays (rmdir fails).
bool remove_flat_dir(const char* dir) {
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* e = reinterpret_cast<const struct dirent64*>(buf + off);
      const bool dot = e->d_name[0] == '.' &&
                       (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0));
      if (!dot) ::unlinkat(fd, e->d_name, 0);
      off += e->d_reclen;
    }
  }
  ::close(fd);
  return ::rmdir(dir) == 0;
}

extern "C" void on_signal(int sig) {
  if (::getpid() == g_owner.load(std::memory_order_relaxed)) {
    int removed = 0;
    for (int pass = 0; pass < 2; ++pass) {  // files, then the directories that held them
      for (Slot& s : g_slots) {
        const int st = s.state.load(std::memory_order_acquire);
        if (pass == 0 && st == kFile && ::unlink(s.path) == 0) ++removed;
        if (pass == 1 && st == kDir && remove_flat_dir(s.path)) ++removed;
      }
    }
    write_stderr(removed ? "dsq: interrupted; temporary outputs removed\n" : "dsq: interrupted\n");
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // delivered when the handler returns (the signal is blocked inside it)
}

}  // namespace

void install_handlers() {
  if (g_installed.exchange(true)) return;
  g_owner.store(::getpid());
  for (int sig : kSignals) {
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;  // nohup and friends: keep ignoring
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int other : kSignals) sigaddset(&sa.sa_mask, other);  // one cleanup at a time
    ::sigaction(sig, &sa, nullptr);
  }
}

RemoveOnSignal::RemoveOnSignal(const std::string& path, bool directory) {
  if (path.empty() || path.size() >= sizeof(Slot::path)) {
    log_debug("interrupt: path too long to watch: " + path.substr(0, 80));
    return;
  }
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kFilling, std::memory_order_acq_rel))
      continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(directory ? kDir : kFile, std::memory_order_release);
    slot_ = i;
    return;
  }
  log_debug("interrupt: every slot in use; not watching " + path.substr(0, 80));
}

RemoveOnSignal& RemoveOnSignal::operator=(RemoveOnSignal&& o) noexcept {
  if (this != &o) {
    release();
    slot_ = o.slot_;
    o.slot_ = -1;
  }
  return *this;
}

void RemoveOnSignal::release() {
  if (slot_ < 0) return;
  g_slots[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

int registered_count() {
  int n = 0;
  for (const Slot& s : g_slots) {
    const int st = s.state.load(std::memory_order_acquire);
    n += st == kFile || st == kDir;
  }
  return n;
}

}  // namespace dsq::interrupt
