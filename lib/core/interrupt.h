// Temporary outputs removed when the process is interrupted (SIGINT, SIGTERM, SIGHUP).
//
// Every writer builds its output as `<out>.tmp` and renames it into place when done, so an
// interrupted run never leaves a half-written output; this removes the `.tmp` itself too, which for
// a large model is most of the disk. A writer holds a RemoveOnSignal for each temporary path while
// it exists; the signal handler (installed once by main) unlinks every registered file, then
// removes every registered directory with the files directly in it, says so in
// one line on stderr and re-raises the signal with its default action, so the exit status still
// says "killed by SIGINT" (130 in a shell). Work directories kept for `--resume` (OUT.partial/) are
// not registered: an interrupted run resumes from them.
//
// The handler only makes system calls (unlink, open, getdents64, unlinkat, rmdir, write, sigaction,
// raise; no allocation, no locks) over a
// fixed table of slots claimed with atomics, so registering from any thread is safe.
#pragma once

#include <string>

namespace dsq::interrupt {

// Installs the handlers for SIGINT, SIGTERM and SIGHUP (a signal ignored at start, e.g. SIGHUP
// under nohup, stays ignored). Idempotent. Only this process removes files: a forked child that
// receives the signal dies by it without touching them.
void install_handlers();

// Registers `path` for removal on a signal while the object lives (a directory: with the files
// directly in it, not subdirectories). A path longer than the table's
// slots (4095 bytes) or beyond its capacity (256 paths) is not registered (logged at debug level):
// the run still works, only that temporary file would stay after an interrupt.
class RemoveOnSignal {
 public:
  RemoveOnSignal() = default;
  explicit RemoveOnSignal(const std::string& path, bool directory = false);
  ~RemoveOnSignal() { release(); }
  RemoveOnSignal(RemoveOnSignal&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
  RemoveOnSignal& operator=(RemoveOnSignal&& o) noexcept;
  RemoveOnSignal(const RemoveOnSignal&) = delete;
  RemoveOnSignal& operator=(const RemoveOnSignal&) = delete;

  // Stops watching the path (it was renamed into place or removed).
  void release();

 private:
  int slot_ = -1;
};

// Paths currently registered (tests).
int registered_count();

}  // namespace dsq::interrupt
