#include "fs/cli.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backup/backup.h"
#include "search/search.h"
#include "fs/import.h"
#include "fs/progress.h"
#include "fs/stats_json.h"
#include "store/store.h"

namespace itemfs::fs {

namespace {

namespace stdfs = std::filesystem;


std::unique_ptr<store::Store> open_store(const std::string& dir, bool read_only = false) {
  store::Options options;
  options.read_only = read_only;
  return store::Store::open(dir, options);
}

// The words after a command: the options it knows, anywhere among them
// (before or after STORE), and the rest in order. Anything else starting
// with '-' is a usage error, never a path; "--" ends the options, and "-"
// alone is a word (stdin).
struct Words {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // "--json" -> "", "--dir" -> DIR
  bool has(const std::string& name) const { return options.count(name) > 0; }
  std::string value(const std::string& name) const {
    auto it = options.find(name);
    return it == options.end() ? std::string() : it->second;
  }
};

// -1 to go on; else the exit status: 0 after -h/--help (the usage on
// stdout), 2 (after saying why and how to call `command`) on an unknown
// option or an option without its value.
int parse_words(const std::string& command, const std::vector<std::string>& args, const std::set<std::string>& flags,
                const std::set<std::string>& valued, const char* usage, Words& out) {
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    }
    std::string name = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (flags.count(name) && !inline_value) {
      out.options[name] = "";
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) {
          std::cerr << "itemfs " << command << ": option " << name << " needs a value\n" << usage;
          return 2;
        }
        value = args[++i];
      }
      out.options[name] = value;
    } else {
      std::cerr << "itemfs " << command << ": unknown option '" << a << "'\n" << usage;
      return 2;
    }
  }
  return -1;
}

}  // namespace

bool store_exists(const std::filesystem::path& dir) {
  struct stat st {};
  return stat((dir / "store.db").c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int no_store(const std::filesystem::path& dir) {
  std::cerr << "itemfs: " << dir.string() << " holds no itemfs store (no store.db)\n";
  return 1;
}

void say_created(const std::filesystem::path& dir) {
  std::cerr << "itemfs: created a new store at " << dir.string() << "\n";
}

int cli_import(const std::vector<std::string>& all) {
  const char* usage =
      "usage: itemfs import STORE PATH... [--id-field NAME | --id-from-url FIELD] [--json]\n"
      "  PATH: .json files (the name is the id), .jsonl/.ndjson JSON Lines (one item a line, named by its\n"
      "  id field), each gzipped or not; directories of them; - for JSON Lines on standard input\n";
  Words words;
  if (int rc = parse_words("import", all, {"--json"}, {"--id-field", "--id-from-url"}, usage, words); rc >= 0)
    return rc;
  const std::vector<std::string>& args = words.positional;
  if (args.size() < 2) {
    std::cerr << usage;
    return 2;
  }
  ImportOptions options;
  options.json = words.has("--json");
  if (words.has("--id-field")) options.id_field = words.value("--id-field");
  options.id_from_url = words.value("--id-from-url");
  if (options.id_field.empty() || (words.has("--id-from-url") && options.id_from_url.empty()) ||
      (words.has("--id-field") && words.has("--id-from-url"))) {
    std::cerr << "itemfs import: give --id-field NAME or --id-from-url FIELD, not both, each with a field name\n"
              << usage;
    return 2;
  }
  // A setting of the whole process, made before its threads start: each
  // thread that allocates while others hold the arenas gets its own (the
  // workers, the index's thread and its helpers, the trainer), and what is
  // freed stays in them: at 300,000 items the arenas held 152 MB of which
  // 69 were in use. Two arenas, and the free pages given back after the
  // batches that freed enough (MemoryTrimmer in the Importer), as in a mount.
  mallopt(M_ARENA_MAX, 2);
  bool fresh = !store_exists(args[0]);
  auto store = open_store(args[0]);
  if (fresh) say_created(args[0]);
  // The index follows the import on its own thread; the import is done
  // when the index has applied it too.
  search::Index index(*store);
  const int rc = run_import(*store, std::vector<std::string>(args.begin() + 1, args.end()), options);
  index.catch_up();
  return rc;
}

int cli_export(const std::vector<std::string>& all) {
  const char* usage =
      "usage: itemfs export STORE DIR [--json]\n"
      "  on a terminal, a progress line on stderr; --json: one JSON summary on stdout\n";
  Words words;
  if (int rc = parse_words("export", all, {"--json"}, {}, usage, words); rc >= 0) return rc;
  const std::vector<std::string>& args = words.positional;
  if (args.size() != 2) {
    std::cerr << usage;
    return 2;
  }
  if (!store_exists(args[0])) return no_store(args[0]);
  auto store = open_store(args[0], true);
  stdfs::path out(args[1]);
  Progress progress("export", Progress::Unit::kItems, store->stats().items);
  auto snapshot = store->snapshot();
  uint64_t count = 0;
  std::vector<std::string> damaged;
  int rc = 0;
  snapshot->for_each_item([&](const store::ItemInfo& item) {
    progress.update(count + damaged.size());
    stdfs::path dir = out / store::shard_of(item.id);
    stdfs::create_directories(dir);
    stdfs::path file = dir / (item.id + ".json");
    std::ofstream os(file, std::ios::binary | std::ios::trunc);
    try {
      snapshot->read_item(item, [&](std::string_view bytes) { os.write(bytes.data(), std::streamsize(bytes.size())); });
    } catch (const store::StoreError& e) {
      // Damaged content is never written out: the item is left out, named.
      os.close();
      std::error_code ec;
      stdfs::remove(file, ec);
      progress.finish();
      std::cerr << "itemfs export: skipped " << item.id << ": " << e.what() << "\n";
      damaged.push_back(item.id);
      rc = 1;
      return;
    }
    os.close();
    if (!os) {
      std::cerr << "itemfs export: cannot write " << file << "\n";
      rc = 1;
      return;
    }
    chmod(file.c_str(), item.attrs.mode & 07777);
    timespec times[2] = {{time_t(item.attrs.mtime_ns / 1000000000), long(item.attrs.mtime_ns % 1000000000)},
                         {time_t(item.attrs.mtime_ns / 1000000000), long(item.attrs.mtime_ns % 1000000000)}};
    utimensat(AT_FDCWD, file.c_str(), times, 0);
    ++count;
  });
  progress.finish();
  if (words.has("--json")) {
    std::cout << nlohmann::json{{"exported", count},
                                {"dir", out.string()},
                                {"damaged", damaged},
                                {"seconds", progress.seconds()}}
                     .dump(2)
              << "\n";
    return rc;
  }
  std::cerr << "exported " << count << " items to " << out.string();
  if (!damaged.empty())
    std::cerr << "; " << damaged.size() << " damaged items left out (itemfs fsck " << args[0] << " names them)";
  std::cerr << "\n";
  return rc;
}

int cli_stats(const std::vector<std::string>& all) {
  const char* usage = "usage: itemfs stats STORE [--json]\n";
  Words words;
  // --json is taken for the scripts that give it: the figures are JSON anyway.
  if (int rc = parse_words("stats", all, {"--json"}, {}, usage, words); rc >= 0) return rc;
  const std::vector<std::string>& args = words.positional;
  if (args.size() != 1) {
    std::cerr << usage;
    return 2;
  }
  if (!store_exists(args[0])) return no_store(args[0]);
  auto store = open_store(args[0], true);
  std::cout << stats_json(store->stats()).dump(2) << "\n";
  return 0;
}

// fsck --repair --from-backup ID: the items whose stored content fsck found
// damaged are rewritten from backup ID; the store is checked again. False
// if anything is left damaged or the backup could not be used.
bool fsck_from_backup(store::Store& store, const std::string& dir, const std::string& backup_dir,
                      const std::string& id, const std::string& key, store::FsckReport& report) {
  if (report.damaged_items.empty()) {
    std::cout << "no damaged items: nothing to repair from backup " << id << "\n";
    return true;
  }
  backup::Options options;
  options.dir = backup_dir.empty() ? stdfs::path(dir) / "backups" : stdfs::path(backup_dir);
  if (!key.empty()) options.key_file = stdfs::path(key);
  backup::Manager manager(store, options);
  backup::RepairReport repaired;
  store::Status st = manager.repair(id, report.damaged_items, repaired);
  for (const auto& item : repaired.repaired) std::cout << "repaired from backup " << id << ": " << item << "\n";
  for (const auto& line : repaired.not_repaired) std::cout << "not repaired: " << line << "\n";
  if (!st.ok()) {
    std::cerr << "itemfs fsck: cannot repair from backup " << id << ": " << st.message << "\n";
    return false;
  }
  report = store.fsck(false);
  std::cout << "after the repair: " << (report.clean() ? "clean" : std::to_string(report.problems.size()) + " problems")
            << "\n";
  for (const auto& line : report.problems) std::cout << "problem: " << line << "\n";
  return repaired.not_repaired.empty();
}

int cli_fsck(const std::vector<std::string>& args) {
  const char* usage = "usage: itemfs fsck STORE [--repair [--from-backup ID [--dir DIR] [--key FILE]]] [--json]\n";
  Words words;
  if (int rc = parse_words("fsck", args, {"--repair", "--json"}, {"--from-backup", "--dir", "--key"}, usage, words); rc >= 0)
    return rc;
  bool repair = words.has("--repair");
  const bool json = words.has("--json");
  const std::string from_backup = words.value("--from-backup"), key = words.value("--key");
  if (words.positional.size() != 1 || (words.has("--from-backup") && (!repair || from_backup.empty()))) {
    std::cerr << usage;
    return 2;
  }
  const std::string& dir = words.positional[0];
  if (!store_exists(dir)) return no_store(dir);
  auto store = open_store(dir);
  // With --json the report's lines go to stderr and one JSON document to stdout.
  std::streambuf* const stdout_buf = std::cout.rdbuf();
  if (json) std::cout.rdbuf(std::cerr.rdbuf());
  struct Restore {
    std::streambuf* buf;
    ~Restore() { std::cout.rdbuf(buf); }
  } restore{stdout_buf};
  store::FsckReport report;
  {
    Progress progress("fsck", Progress::Unit::kItems, 0);
    progress.set_noun("blobs and items");
    report = store->fsck(repair, [&](uint64_t done, uint64_t total) {
      progress.set_total(total);
      progress.update(done);
    });
  }
  for (const auto& line : report.problems) std::cout << "problem: " << line << "\n";
  std::cout << "checked " << report.items_checked << " items and " << report.blobs_checked << " blobs: "
            << (report.clean() ? "clean" : std::to_string(report.problems.size()) + " problems");
  if (repair) std::cout << ", " << report.repaired << " repaired";
  std::cout << "\n";
  const bool backup_ok =
      from_backup.empty() || fsck_from_backup(*store, dir, words.value("--dir"), from_backup, key, report);
  // The search index: out of step with the items is a problem; --repair
  // rebuilds it from them.
  search::Index index(*store);
  std::vector<std::string> index_problems = index.check();
  for (const auto& line : index_problems) std::cout << "search index problem: " << line << "\n";
  bool index_clean = index_problems.empty();
  if (!index_clean && repair) {
    index.reindex();
    index_problems = index.check();
    std::cout << "search index rebuilt: " << (index_problems.empty() ? "clean" : "still out of step") << "\n";
  } else {
    std::cout << "search index: " << (index_clean ? "clean" : std::to_string(index_problems.size()) + " problems")
              << "\n";
  }
  const bool clean = report.clean() && index_clean && backup_ok;
  if (json) {
    std::cout.rdbuf(stdout_buf);
    nlohmann::json out = {{"clean", clean},
                          {"items_checked", report.items_checked},
                          {"blobs_checked", report.blobs_checked},
                          {"problems", report.problems},
                          {"damaged_items", report.damaged_items},
                          {"repaired", report.repaired},
                          {"search_index_problems", index_problems}};
    std::cout << out.dump() << "\n";
  }
  return clean ? 0 : 1;
}

int cli_search(const std::vector<std::string>& args) {
  const char* usage = "usage: itemfs search STORE QUERY [--json]   (-- QUERY for a query that starts with -)\n";
  Words words;
  if (int rc = parse_words("search", args, {"--json"}, {}, usage, words); rc >= 0) return rc;
  bool json = words.has("--json");
  const std::vector<std::string>& positional = words.positional;
  if (positional.size() != 2) {
    std::cerr << usage;
    return 2;
  }
  if (!store_exists(positional[0])) return no_store(positional[0]);
  auto store = open_store(positional[0]);
  search::Index index(*store);
  search::Results results;
  store::Status st = index.run(positional[1], results);
  if (!st.ok()) {
    std::cerr << "itemfs search: " << st.message << "\n";
    return 2;
  }
  if (json) {
    std::string doc = search::Index::to_json(results);
    std::cout << doc << (doc.ends_with('\n') ? "" : "\n");
    return 0;
  }
  // One hit a line: rank, score, path, snippet (tabs and newlines of the
  // snippet become spaces, so cut -f works).
  size_t rank = 0;
  for (const auto& hit : results.hits) {
    std::string snippet = hit.snippet;
    for (char& c : snippet)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    char score[32];
    std::snprintf(score, sizeof score, "%.6g", hit.score);
    std::cout << ++rank << "\t" << score << "\t" << store::item_path(hit.id) << "\t" << snippet << "\n";
  }
  std::cerr << results.hits.size() << " of " << results.total << " matches\n";
  return 0;
}

int cli_reindex(const std::vector<std::string>& all) {
  const char* usage = "usage: itemfs reindex STORE [--json]\n";
  Words words;
  if (int rc = parse_words("reindex", all, {"--json"}, {}, usage, words); rc >= 0) return rc;
  const std::vector<std::string>& args = words.positional;
  if (args.size() != 1) {
    std::cerr << usage;
    return 2;
  }
  if (!store_exists(args[0])) return no_store(args[0]);
  auto store = open_store(args[0]);
  auto started = std::chrono::steady_clock::now();
  Progress progress("reindex", Progress::Unit::kItems, 0);
  uint64_t items = 0;
  search::IndexOptions options;
  options.progress = [&](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
    items = total;
  };
  search::Index index(*store, options);
  if (!index.rebuilt_when_opened()) index.reindex();  // (an index of an older version was rebuilt just now)
  progress.finish();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (words.has("--json")) {
    std::cout << nlohmann::json{{"items", items}, {"seconds", seconds}}.dump(2) << "\n";
  } else {
    std::cerr << "reindexed " << items << " items in " << seconds << " s\n";
  }
  return 0;
}

// itemfs backup STORE [--dir DIR] [--key FILE] COMMAND...: the commands of
// backups/ctl, plus list and decrypt, run by the same engine as the mount.
int cli_backup(const std::vector<std::string>& args) {
  const char* usage =
      "usage: itemfs backup STORE [--dir DIR] [--key FILE] [--json] full | incremental | list | verify ID\n"
      "       | verify all | restore ID [clear | PATH|GLOB...] | prune [keep_last=N] [keep_days=D]\n"
      "       | delete ID | decrypt ARCHIVE\n"
      "  restore ID items/ab/abc.json 'items/cd/*' restores only the items that match (quote a glob)\n"
      "  on a terminal, a progress line on stderr; the job's result as JSON on stdout (--json or not)\n";
  Words parsed;
  if (int rc = parse_words("backup", args, {"--json"}, {"--dir", "--key"}, usage, parsed); rc >= 0) return rc;
  const bool json = parsed.has("--json");
  std::string dir = parsed.value("--dir"), key = parsed.value("--key");
  std::vector<std::string> words = parsed.positional;
  if (words.size() < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string store_dir = words[0];
  words.erase(words.begin());
  if (words[0] == "decrypt") {
    if (words.size() != 2 || key.empty()) {
      std::cerr << "usage: itemfs backup STORE decrypt ARCHIVE --key FILE > plain.tar.gz\n";
      return 2;
    }
    if (isatty(STDOUT_FILENO)) {
      std::cerr << "itemfs backup decrypt: the tar.gz goes to standard output; redirect it to a file\n";
      return 2;
    }
    std::ios::sync_with_stdio(false);
    store::Status st = backup::decrypt(words[1], key, std::cout);
    if (!st.ok()) {
      std::cerr << "itemfs backup decrypt: " << st.message << " (discard what was written)\n";
      return 1;
    }
    return 0;
  }
  if (!store_exists(store_dir)) return no_store(store_dir);
  auto store = open_store(store_dir);
  // A restore writes items: the index follows them, and has applied them
  // when the command returns.
  search::Index index(*store);
  struct CatchUp {
    search::Index& index;
    ~CatchUp() { index.catch_up(); }
  } catch_up{index};
  backup::Options options;
  options.dir = dir.empty() ? stdfs::path(store_dir) / "backups" : stdfs::path(dir);
  if (!key.empty()) options.key_file = stdfs::path(key);
  // On a terminal, one updating line for the job: a fresh one (rate and
  // time left from its start) with each phase that counts anew.
  std::unique_ptr<Progress> line;
  int line_phase = -1;
  options.progress = [&](const backup::JobProgress& p) {
    if (p.items_total == 0 && p.bytes_total == 0 && p.items_done == 0) return;  // nothing to show yet
    const bool bytes = p.bytes_total > 0;
    if (!line || p.phase_number != line_phase) {
      if (line) line->finish();
      line = std::make_unique<Progress>("backup " + p.job, bytes ? Progress::Unit::kBytes : Progress::Unit::kItems,
                                        bytes ? p.bytes_total : p.items_total);
      line_phase = p.phase_number;
    }
    line->update(bytes ? p.bytes_done : p.items_done, p.phase);
  };
  backup::Manager manager(*store, options);
  if (words[0] == "list") {
    if (words.size() != 1) {
      std::cerr << usage;
      return 2;
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : manager.list()) {
      if (json) {
        out.push_back({{"id", b.id}, {"kind", b.kind}, {"parent", b.parent}, {"items", b.item_count},
                       {"archived", b.archived_count}, {"verified", b.verified_ns != 0},
                       {"verified_ok", b.verified_ok}, {"encrypted", b.encrypted}});
        continue;
      }
      std::cout << b.id << "\t" << b.kind << "\t" << (b.parent.empty() ? "-" : b.parent) << "\t" << b.item_count
                << " items\t" << b.archived_count << " archived\t"
                << (b.verified_ns == 0 ? "never verified" : b.verified_ok ? "verified ok" : "VERIFY FAILED")
                << (b.encrypted ? "\tencrypted" : "") << "\n";
    }
    if (json) std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::string command;
  for (const auto& w : words) command += (command.empty() ? "" : " ") + w;
  store::Status st = manager.run(command);
  if (line) line->finish();
  // The job's result as JSON (its "id" names the backup written), as
  // backups/status shows it: the one summary, with or without --json.
  auto status = nlohmann::json::parse(manager.status_json(), nullptr, false);
  if (!status.is_discarded() && status.contains("last")) std::cout << status["last"].dump(2) << "\n";
  if (!st.ok()) {
    std::cerr << "itemfs backup: " << command << ": " << st.message << "\n";
    return 1;
  }
  return 0;
}

}  // namespace itemfs::fs
