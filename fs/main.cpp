// itemfs: mount a store of JSON items, or work on one offline.
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <archive.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include "base/sqlite_stmt.h"
#include "fs/cli.h"
#include "fs/filesystem.h"
#include "store/store.h"

namespace {

const char* const kUsage = R"(usage:
  itemfs mount STORE MOUNTPOINT [-f] [-o OPT,...]   mount (also: itemfs STORE MOUNTPOINT -o ...)
  itemfs import STORE PATH...|-                     load .json, .jsonl, .ndjson (gzipped or not), directories,
                                                    or JSON Lines on stdin [--id-field F|--id-from-url F] [--json]
  itemfs export STORE DIR                           write every item as DIR/<shard>/<id>.json
  itemfs stats STORE                                item count, sizes, dedup and compression
  itemfs search STORE QUERY [--json]                the engine of MNT/search/: rank, score, path, snippet
  itemfs reindex STORE [--json]                     rebuild the search index from the items
  itemfs backup STORE [--dir DIR] [--key FILE] full | incremental | list | verify ID | verify all
                | restore ID [clear | PATH|GLOB...] | prune [keep_last=N] [keep_days=D] | delete ID
                | decrypt ARCHIVE > plain.tar.gz    backups without mounting (as MNT/backups/ctl)
  itemfs fsck STORE [--repair]                      check every blob, count and the search index;
                                                    --repair also rebuilds an index out of step
    [--from-backup ID [--key FILE]]                 with --repair: rewrite damaged items from backup ID
  itemfs --version                                  this itemfs and the libraries it runs with
  itemfs COMMAND --help                             one command's usage

mount options (-o, comma separated; others go to FUSE, e.g. allow_other):
  max_item_size=BYTES   largest item accepted (default 64 MiB; EFBIG above)
  sync=full             fsync the database at every commit (default: normal)
  backup_dir=DIR        where backups live (default STORE/backups)
  backup_key=FILE       encrypt backups with the 32-byte key in FILE
  backup_every=DURATION take a backup every DURATION (e.g. 30m, 24h)
  backup_keep_last=N    after a scheduled backup, prune to the N newest
  backup_chain=N        a full backup when an incremental chain would exceed N
  backup_group=GROUP    the group (name or gid) that may read backups/ too (default: the owner only)
  log_file=PATH         append every event to PATH (default STORE/log; MNT/log reads it)
  log_max_size=BYTES    move the log to PATH.1 past this size (default 4M)
  ro                    read-only (also chosen, with a warning, when the store cannot be written)

Only mount and import create a store; the other commands need one (exit 1).
Exit status: 0 done, 1 failed, 2 usage (unknown option, bad option value).
)";

// A bad word on the command line: exit status 2, with the usage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void bad_value(const std::string& option, const std::string& value, const char* expected) {
  throw UsageError("bad value for " + option + ": '" + value + "' (expected " + expected + ")");
}

// A positive number with an optional unit, all of `text`: "64M", "1.5G".
bool parse_scaled(const std::string& text, const std::map<std::string, double>& units, double& out) {
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return false;
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || !std::isfinite(value) || value <= 0) return false;
  auto unit = units.find(std::string(end));
  if (unit == units.end()) return false;
  out = value * unit->second;
  return out >= 1 && out < 9.2e18;
}

uint64_t parse_size(const std::string& option, const std::string& text) {
  static const std::map<std::string, double> kUnits = {
      {"", 1},           {"B", 1},          {"K", 1024.0},           {"KiB", 1024.0},
      {"M", 1048576.0},  {"MiB", 1048576.0}, {"G", 1073741824.0},   {"GiB", 1073741824.0}};
  double value = 0;
  if (!parse_scaled(text, kUnits, value)) bad_value(option, text, "a size like 64M");
  return uint64_t(value);
}

int64_t parse_duration(const std::string& option, const std::string& text) {
  static const std::map<std::string, double> kUnits = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  double value = 0;
  if (!parse_scaled(text, kUnits, value)) bad_value(option, text, "a duration like 30m or 24h");
  return int64_t(value);
}

int parse_count(const std::string& option, const std::string& text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 1)
    bad_value(option, text, "a whole number of at least 1");
  return value;
}

// Whether `dir` is the mount point of a mounted filesystem, as
// mountpoint(1) -q decides: /proc/self/mountinfo's fifth field, with the
// kernel's octal escapes (\040 for a space) undone.
bool is_mount_point(const std::filesystem::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    std::string plain;
    for (size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size() && std::isdigit(static_cast<unsigned char>(point[i + 1]))) {
        plain += char(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        plain += point[i];
      }
    }
    if (plain == dir.string()) return true;
  }
  return false;
}

// Refuses a mount point that is not a directory or that something is
// already mounted on (a second daemon stacked on the first would hide it),
// before anything is created. Returns the exit status, 0 if fine.
int check_mount_point(const std::filesystem::path& mountpoint) {
  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOTCONN) {
      std::cerr << "itemfs: " << mountpoint.string()
                << " is already mounted, by a daemon that no longer answers; unmount it first (fusermount3 -u "
                << mountpoint.string() << ")\n";
    } else {
      std::cerr << "itemfs: cannot mount on " << mountpoint.string() << ": " << std::strerror(err) << "\n";
    }
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    std::cerr << "itemfs: cannot mount on " << mountpoint.string() << ": not a directory\n";
    return 1;
  }
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(mountpoint, ec);
  if (is_mount_point(ec ? mountpoint : real)) {
    std::cerr << "itemfs: " << mountpoint.string()
              << " is already mounted; unmount it first (fusermount3 -u " << mountpoint.string() << ")\n";
    return 1;
  }
  return 0;
}

// Whether the store in `dir` cannot be written: its filesystem is mounted
// read-only, or its database or directory is not writable by this user.
bool store_read_only(const std::filesystem::path& dir) {
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY)) return true;
  return access(dir.c_str(), W_OK) != 0 || access((dir / "store.db").c_str(), W_OK) != 0;
}

// A group name or a numeric gid.
int64_t parse_group(const std::string& option, const std::string& text) {
  if (const struct group* g = ::getgrnam(text.c_str())) return int64_t(g->gr_gid);
  uint32_t gid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), gid);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || gid == 0xffffffffu)
    bad_value(option, text, "a group name or gid");
  return int64_t(gid);
}

int mount_command(const std::vector<std::string>& args) {
  itemfs::fs::MountConfig config;
  std::vector<std::string> positional;
  bool read_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-f") {
      config.foreground = true;
    } else if (a == "-o" || (a.starts_with("-o") && a.size() > 2)) {
      if (a == "-o" && i + 1 >= args.size()) throw UsageError("-o needs a list of options");
      std::string list = a == "-o" ? args[++i] : a.substr(2);
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string opt = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? list.size() + 1 : comma + 1;
        if (opt.empty()) continue;
        auto eq = opt.find('=');
        std::string key = opt.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
        if (key == "max_item_size") config.store_options.max_item_size = parse_size(key, value);
        else if (key == "sync") {
          if (value != "full" && value != "normal") bad_value(key, value, "full or normal");
          config.store_options.sync_full = value == "full";
        } else if (key == "backup_dir" || key == "backup_key" || key == "log_file") {
          if (value.empty()) bad_value(key, value, key == "backup_dir" ? "a directory" : "a file");
          if (key == "backup_dir") config.backup_dir = value;
          else if (key == "backup_key") config.backup_key_file = value;
          else config.log_file = std::filesystem::absolute(value);
        } else if (key == "backup_every") config.backup_every_seconds = parse_duration(key, value);
        else if (key == "backup_keep_last") config.backup_keep_last = parse_count(key, value);
        else if (key == "backup_chain") config.backup_chain_max = parse_count(key, value);
        else if (key == "log_max_size") config.log_max_bytes = parse_size(key, value);
        else if (key == "backup_group") config.backup_group = parse_group(key, value);
        else if (key == "ro") read_only = true;
        else if (key == "rw" || key == "dev" || key == "suid" || key == "nodev" || key == "nosuid" || key == "exec" ||
                 key == "noexec" || key == "auto" || key == "noauto" || key == "_netdev" || key == "user" ||
                 key == "nouser" || key == "nofail" || key == "defaults") {
          // fstab words that mount(8) passes along; not ours to act on.
        } else config.fuse_options.push_back(opt);
      }
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a.size() > 1 && a[0] == '-') {
      throw UsageError("unknown option '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    std::cerr << kUsage;
    return 2;
  }
  // Absolute, without "." or ".." or a trailing slash.
  auto clean = [](const std::string& word) {
    std::filesystem::path p = std::filesystem::absolute(word).lexically_normal();
    return p.has_relative_path() && p.filename().empty() ? p.parent_path() : p;
  };
  config.store_dir = clean(positional[0]);
  config.mountpoint = clean(positional[1]);
  if (int rc = check_mount_point(config.mountpoint)) return rc;
  if (!itemfs::fs::store_exists(config.store_dir)) {
    if (read_only) return itemfs::fs::no_store(config.store_dir);
    try {
      itemfs::store::Store::open(config.store_dir, config.store_options).reset();
    } catch (const std::exception& e) {
      std::cerr << "itemfs: cannot create a store at " << config.store_dir.string() << ": " << e.what() << "\n";
      return 1;
    }
    itemfs::fs::say_created(config.store_dir);
  } else if (!read_only && store_read_only(config.store_dir)) {
    read_only = true;
    config.read_only_reason = "store is on a read-only filesystem (or not writable by this user): mounted read-only";
    std::cerr << "itemfs: warning: " << config.read_only_reason << "\n";
  }
  if (read_only) {
    config.store_options.read_only = true;
    config.fuse_options.push_back("ro");
  } else {
    // A close() returns once its write is accepted (DESIGN.md §4).
    config.store_options.journal = true;
  }
  return itemfs::fs::run_mount(config);
}

}  // namespace

// What --version prints: itemfs's version and the libraries it runs with,
// as rclone and restic show theirs.
std::string version_text() {
  return std::string("itemfs ") + ITEMFS_VERSION + "\n" + "libfuse " + fuse_pkgversion() + ", " +
         itemfs::store::Store::engine_version() + ", zlib " + zlibVersion() + ", " + OpenSSL_version(OPENSSL_VERSION) + ", " +
         archive_version_string() + "\n";
}

int main(int argc, char** argv) {
  itemfs::base::log_sqlite_damage();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
    std::cout << version_text();
    return 0;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "mount") return mount_command(rest);
    if (command == "import") return itemfs::fs::cli_import(rest);
    if (command == "export") return itemfs::fs::cli_export(rest);
    if (command == "stats") return itemfs::fs::cli_stats(rest);
    if (command == "fsck") return itemfs::fs::cli_fsck(rest);
    if (command == "search") return itemfs::fs::cli_search(rest);
    if (command == "reindex") return itemfs::fs::cli_reindex(rest);
    if (command == "backup") return itemfs::fs::cli_backup(rest);
    // fstab's fuse.itemfs runs `itemfs STORE MOUNTPOINT -o ...`: STORE is a
    // path (it has a '/', as fstab's are absolute) or an existing directory;
    // a mistyped command is neither and stays an error.
    struct stat st {};
    if (args.size() >= 2 && (command.find('/') != std::string::npos ||
                             (stat(command.c_str(), &st) == 0 && S_ISDIR(st.st_mode))))
      return mount_command(args);
    std::cerr << "itemfs: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "itemfs: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "itemfs " << command << ": " << e.what() << "\n";
    return 1;
  }
}
