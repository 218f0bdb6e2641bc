#include "fs/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "store/store.h"

namespace itemfs::fs {

namespace {

namespace stdfs = std::filesystem;

int64_t mtime_ns_of(const struct stat& st) { return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

// Loads items in transactions of kBatch, so a crash loses at most one batch
// and a million files do not make a million commits.
class Importer {
 public:
  explicit Importer(store::Store& store) : store_(store), tty_(isatty(STDERR_FILENO)) {}

  struct Pending {
    std::string id;
    std::string bytes;
    store::Attrs attrs;
    std::string origin;
  };

  void add(Pending item) {
    batch_bytes_ += item.bytes.size();
    batch_.push_back(std::move(item));
    if (batch_.size() >= 1000 || batch_bytes_ >= (64u << 20)) flush();
  }

  void flush() {
    if (batch_.empty()) return;
    store_.write([&](store::WriteBatch& batch) {
      for (auto& item : batch_) {
        std::istringstream in(std::move(item.bytes));
        store::Status status = batch.put(item.id, in, item.attrs);
        if (status.ok()) {
          ++imported_;
          bytes_ += uint64_t(in.str().size());
        } else {
          ++refused_;
          std::cerr << "itemfs import: skipped " << item.origin << ": " << status.message << "\n";
        }
      }
    });
    batch_.clear();
    batch_bytes_ = 0;
    progress(false);
  }

  void refuse(const std::string& origin, const std::string& why) {
    ++refused_;
    std::cerr << "itemfs import: skipped " << origin << ": " << why << "\n";
  }

  void progress(bool done) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (!tty_ && !done) return;
    char line[200];
    std::snprintf(line, sizeof line, "%s%llu items, %.1f MB, %llu skipped, %.0f items/s%s", tty_ ? "\r" : "",
                  (unsigned long long)imported_, double(bytes_) / 1e6, (unsigned long long)refused_,
                  seconds > 0 ? double(imported_) / seconds : 0.0, done ? "\n" : "");
    std::cerr << line << std::flush;
  }

  uint64_t refused() const { return refused_; }

 private:
  store::Store& store_;
  bool tty_;
  std::vector<Pending> batch_;
  uint64_t batch_bytes_ = 0;
  uint64_t imported_ = 0, refused_ = 0, bytes_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

bool read_file(const stdfs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return true;
}

void import_json_file(Importer& importer, const stdfs::path& path) {
  Importer::Pending item;
  std::string name = path.filename().string();
  item.id = name.substr(0, name.size() - 5);
  item.origin = path.string();
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !read_file(path, item.bytes))
    return importer.refuse(path.string(), std::strerror(errno));
  item.attrs = {uint32_t(S_IFREG | (st.st_mode & 07777)), st.st_uid, st.st_gid, mtime_ns_of(st)};
  importer.add(std::move(item));
}

// One document a line; its "id" field names the item.
void import_jsonl(Importer& importer, const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return importer.refuse(path.string(), std::strerror(errno));
  std::string line;
  uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string origin = path.string() + ":" + std::to_string(number);
    auto doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded()) {
      importer.refuse(origin, "invalid JSON");
      continue;
    }
    std::string id;
    if (doc.is_object() && doc.contains("id")) {
      const auto& v = doc["id"];
      id = v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : "";
    }
    if (id.empty()) {
      importer.refuse(origin, "no \"id\" field to name the item");
      continue;
    }
    importer.add({id, line, store::Attrs{S_IFREG | 0644, getuid(), getgid(), 0}, origin});
  }
}

std::unique_ptr<store::Store> open_store(const std::string& dir, bool read_only = false) {
  store::Options options;
  options.read_only = read_only;
  return store::Store::open(dir, options);
}

}  // namespace

int cli_import(const std::vector<std::string>& args) {
  if (args.size() < 2) {
    std::cerr << "usage: itemfs import STORE PATH...\n";
    return 2;
  }
  auto store = open_store(args[0]);
  Importer importer(*store);
  for (size_t i = 1; i < args.size(); ++i) {
    stdfs::path path(args[i]);
    std::error_code ec;
    if (stdfs::is_directory(path, ec)) {
      std::vector<stdfs::path> files;
      for (auto it = stdfs::recursive_directory_iterator(path, ec); !ec && it != stdfs::recursive_directory_iterator();
           it.increment(ec)) {
        if (!it->is_regular_file()) continue;
        std::string name = it->path().filename().string();
        if (name.size() > 5 && name.ends_with(".json")) files.push_back(it->path());
        else if (name.ends_with(".jsonl")) files.push_back(it->path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) {
        if (file.extension() == ".jsonl") import_jsonl(importer, file);
        else import_json_file(importer, file);
      }
    } else if (path.extension() == ".jsonl") {
      import_jsonl(importer, path);
    } else if (path.extension() == ".json") {
      import_json_file(importer, path);
    } else {
      importer.refuse(path.string(), "not a directory, .json or .jsonl file");
    }
  }
  importer.flush();
  importer.progress(true);
  return importer.refused() ? 1 : 0;
}

int cli_export(const std::vector<std::string>& args) {
  if (args.size() != 2) {
    std::cerr << "usage: itemfs export STORE DIR\n";
    return 2;
  }
  auto store = open_store(args[0], true);
  stdfs::path out(args[1]);
  auto snapshot = store->snapshot();
  uint64_t count = 0;
  int rc = 0;
  snapshot->for_each_item([&](const store::ItemInfo& item) {
    stdfs::path dir = out / store::shard_of(item.id);
    stdfs::create_directories(dir);
    stdfs::path file = dir / (item.id + ".json");
    std::ofstream os(file, std::ios::binary | std::ios::trunc);
    snapshot->read_item(item, [&](std::string_view bytes) { os.write(bytes.data(), std::streamsize(bytes.size())); });
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
  std::cerr << "exported " << count << " items to " << out.string() << "\n";
  return rc;
}

int cli_stats(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::cerr << "usage: itemfs stats STORE\n";
    return 2;
  }
  auto store = open_store(args[0], true);
  store::Stats s = store->stats();
  nlohmann::json j = {{"items", s.items},
                      {"logical_bytes", s.logical_bytes},
                      {"unique_bytes", s.unique_bytes},
                      {"stored_bytes", s.stored_bytes},
                      {"database_bytes", s.database_bytes},
                      {"blobs", s.blobs},
                      {"dedup_ratio", s.dedup_ratio()},
                      {"compression_ratio", s.compression_ratio()}};
  std::cout << j.dump(2) << "\n";
  return 0;
}

int cli_fsck(const std::vector<std::string>& args) {
  bool repair = false;
  std::string dir;
  for (const auto& a : args) {
    if (a == "--repair") repair = true;
    else dir = a;
  }
  if (dir.empty()) {
    std::cerr << "usage: itemfs fsck STORE [--repair]\n";
    return 2;
  }
  auto store = open_store(dir);
  store::FsckReport report = store->fsck(repair);
  for (const auto& line : report.problems) std::cout << "problem: " << line << "\n";
  std::cout << "checked " << report.items_checked << " items and " << report.blobs_checked << " blobs: "
            << (report.clean() ? "clean" : std::to_string(report.problems.size()) + " problems");
  if (repair) std::cout << ", " << report.repaired << " repaired";
  std::cout << "\n";
  return report.clean() ? 0 : 1;
}

}  // namespace itemfs::fs
