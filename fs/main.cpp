// itemfs: mount a store of JSON items, or work on one offline.
#include <grp.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "fs/cli.h"
#include "fs/filesystem.h"

namespace {

const char* const kUsage = R"(usage:
  itemfs mount STORE MOUNTPOINT [-f] [-o OPT,...]   mount (also: itemfs STORE MOUNTPOINT -o ...)
  itemfs import STORE PATH...                       load .json files, directories or .jsonl
  itemfs export STORE DIR                           write every item as DIR/<shard>/<id>.json
  itemfs stats STORE                                item count, sizes, dedup and compression
  itemfs search STORE QUERY [--json]                the engine of MNT/search/: rank, score, path, snippet
  itemfs reindex STORE                              rebuild the search index from the items
  itemfs backup STORE [--dir DIR] [--key FILE] full | incremental | list | verify ID | verify all
                | restore ID [clear] | prune [keep_last=N] [keep_days=D] | delete ID
                | decrypt ARCHIVE > plain.tar.gz    backups without mounting (as MNT/backups/ctl)
  itemfs fsck STORE [--repair]                      check every blob, count and the search index;
                                                    --repair also rebuilds an index out of step
    [--from-backup ID [--key FILE]]                 with --repair: rewrite damaged items from backup ID

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
)";

uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  double value = std::stod(text, &used);
  std::string unit = text.substr(used);
  double scale = unit.empty() || unit == "B" ? 1
                 : unit == "K" || unit == "KiB" ? 1024.0
                 : unit == "M" || unit == "MiB" ? 1024.0 * 1024
                 : unit == "G" || unit == "GiB" ? 1024.0 * 1024 * 1024
                                                : -1;
  if (scale < 0 || value <= 0) throw std::invalid_argument("bad size: " + text);
  return uint64_t(value * scale);
}

int64_t parse_duration(const std::string& text) {
  size_t used = 0;
  double value = std::stod(text, &used);
  std::string unit = text.substr(used);
  double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : -1;
  if (scale < 0 || value <= 0) throw std::invalid_argument("bad duration: " + text);
  return int64_t(value * scale);
}

// A group name or a numeric gid.
int64_t parse_group(const std::string& text) {
  if (const struct group* g = ::getgrnam(text.c_str())) return int64_t(g->gr_gid);
  size_t used = 0;
  unsigned long gid = text.empty() || text[0] == '-' ? 0 : std::stoul(text, &used);
  if (text.empty() || used != text.size() || gid >= 0xffffffffUL) {
    throw std::invalid_argument("backup_group=" + text + ": not a group name or gid");
  }
  return int64_t(gid);
}

int mount_command(const std::vector<std::string>& args) {
  itemfs::fs::MountConfig config;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-f") {
      config.foreground = true;
    } else if (a == "-o" && i + 1 < args.size()) {
      std::string list = args[++i];
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string opt = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? list.size() + 1 : comma + 1;
        if (opt.empty()) continue;
        auto eq = opt.find('=');
        std::string key = opt.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
        if (key == "max_item_size") config.store_options.max_item_size = parse_size(value);
        else if (key == "sync") {
          if (value != "full" && value != "normal") throw std::invalid_argument("sync= takes full or normal");
          config.store_options.sync_full = value == "full";
        } else if (key == "backup_dir") config.backup_dir = value;
        else if (key == "backup_key") config.backup_key_file = value;
        else if (key == "backup_every") config.backup_every_seconds = parse_duration(value);
        else if (key == "backup_keep_last") config.backup_keep_last = std::stoi(value);
        else if (key == "backup_chain") config.backup_chain_max = std::stoi(value);
        else if (key == "backup_group") config.backup_group = parse_group(value);
        else if (key == "log_file") config.log_file = std::filesystem::absolute(value);
        else if (key == "log_max_size") config.log_max_bytes = parse_size(value);
        else if (key == "rw" || key == "dev" || key == "suid" || key == "nodev" || key == "nosuid" || key == "exec" ||
                 key == "noexec" || key == "auto" || key == "noauto" || key == "_netdev" || key == "user" ||
                 key == "nouser" || key == "nofail" || key == "defaults") {
          // fstab words that mount(8) passes along; not ours to act on.
        } else config.fuse_options.push_back(opt);
      }
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    std::cerr << kUsage;
    return 2;
  }
  config.store_dir = std::filesystem::absolute(positional[0]).lexically_normal();
  config.mountpoint = std::filesystem::absolute(positional[1]).lexically_normal();
  return itemfs::fs::run_mount(config);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
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
  } catch (const std::exception& e) {
    std::cerr << "itemfs " << command << ": " << e.what() << "\n";
    return 1;
  }
}
