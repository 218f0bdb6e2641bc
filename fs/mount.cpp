// run_mount (fs/filesystem.h): the FUSE session of a mount, from the mount
// to the unmount.
#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "base/log.h"
#include "fs/filesystem.h"
#include "fs/ops.h"

namespace itemfs::fs {

int run_mount(const MountConfig& config) {
  // glibc gives each of the FUSE threads its own heap arena as they contend,
  // and freed memory stays in them: two arenas for two cores kept the
  // daemon 8 MB smaller after a cp -r of 30k items, at no measurable cost.
  mallopt(M_ARENA_MAX, 2);
  // Every file open for writing holds a staging fd: take all the descriptors
  // the system allows this process, not the 1,024 of the soft limit.
  struct rlimit files {};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  std::unique_ptr<store::Store> store;
  try {
    // Open once before detaching so a bad store is reported to the caller.
    store::Store::open(config.store_dir, config.store_options).reset();
    if (std::string warning = store::permissions_warning(config.store_dir); !warning.empty())
      std::cerr << "itemfs: warning: " << warning << "\n";
  } catch (const std::exception& e) {
    std::cerr << "itemfs: cannot open store " << config.store_dir << ": " << e.what() << "\n";
    return 1;
  }
  std::vector<std::string> args = {
      "itemfs",        "-o", "default_permissions", "-o", "fsname=itemfs:" + config.store_dir.string(), "-o",
      "subtype=itemfs"};
  for (const auto& opt : config.fuse_options) {
    args.push_back("-o");
    args.push_back(opt);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(int(argv.size()), argv.data());

  FsHolder holder;
  const fuse_lowlevel_ops& ops = low_level_ops();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof(ops), &holder);
  fuse_opt_free_args(&fargs);
  if (!se) {
    std::cerr << "itemfs: bad mount options\n";
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_session_mount(se, config.mountpoint.c_str()) != 0) {
    std::cerr << "itemfs: cannot mount on " << config.mountpoint << "\n";
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  fuse_daemonize(config.foreground ? 1 : 0);
  int rc = 1;
  try {
    store = store::Store::open(config.store_dir, config.store_options);
    holder.fs = std::make_unique<Filesystem>(*store, config);
    Filesystem& fs = *holder.fs;
    fs.ctx.log.use_syslog(!config.foreground);
    // What the store reports on its own (a dropped write, the space
    // reserve, SQLite's reports of damage) goes to the mount's log, with
    // what it reported while opening.
    base::set_log_sink([&fs](std::string_view line) { fs.ctx.log.add(std::string(line)); });
    if (!config.read_only_reason.empty()) fs.ctx.log.add("warning: " + config.read_only_reason);
    fs.start(se);
    fuse_loop_config* loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(loop, 16);
    fuse_loop_cfg_set_idle_threads(loop, 8);
    // libfuse reports an exit by signal as the signal's number: SIGTERM and
    // SIGINT are how a daemon is asked to unmount, so they are success.
    // Asked to exit (SIGTERM, SIGINT, unmount), the loop waits for every
    // request in progress, and a backups/ctl write waits for its job: the
    // job is cancelled as soon as the session is asked to exit.
    std::atomic<bool> loop_done{false};
    std::thread canceller([&] {
      while (!loop_done.load()) {
        if (fuse_session_exited(se)) {
          fs.cancel_jobs();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    int res = fuse_session_loop_mt(se, loop);
    loop_done = true;
    canceller.join();
    rc = res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ? 0 : 1;
    fuse_loop_cfg_destroy(loop);
    fs.stop();
  } catch (const std::exception& e) {
    std::cerr << "itemfs: " << e.what() << "\n";
  }
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  base::set_log_sink({});
  holder.fs.reset();
  store.reset();
  return rc;
}

}  // namespace itemfs::fs
