#include "fs/import.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/sha256.h"
#include "fs/memory_trim.h"
#include "fs/progress.h"
#include "store/pipeline.h"

namespace itemfs::fs {

namespace {

namespace stdfs = std::filesystem;

// What put_prepared() says of an item stored already, bytes and attributes
// alike (PreparedItem::skip_if_unchanged()): not written again, counted unchanged.
constexpr int kUnchanged = EALREADY;

int64_t mtime_ns_of(const struct stat& st) { return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

bool ends_with(const std::string& s, std::string_view suffix) { return s.size() >= suffix.size() && s.ends_with(suffix); }

enum class Kind { kJson, kLines };

struct Input {
  std::string path;  // "-": standard input
  Kind kind = Kind::kJson;
  uint64_t size = 0;  // on disk (compressed, for .gz): what progress counts
};

// The kind of a file by its name, or nothing.
std::optional<Kind> kind_of(const std::string& name) {
  std::string plain = ends_with(name, ".gz") ? name.substr(0, name.size() - 3) : name;
  if (plain.size() > 5 && ends_with(plain, ".json")) return Kind::kJson;
  if (ends_with(plain, ".jsonl") || ends_with(plain, ".ndjson")) return Kind::kLines;
  return std::nullopt;
}

// A .json file's id: its name less ".json" (or ".json.gz").
std::string id_of_file(const std::string& path) {
  std::string name = stdfs::path(path).filename().string();
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  return name.substr(0, name.size() - 5);
}

// All of a file, through zlib when it is gzipped (gzread passes plain
// files through as they are). At most `limit` + 1 bytes: more is too large.
store::Status read_whole(const std::string& path, uint64_t limit, std::string& out) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return store::Status::error(EIO, std::strerror(errno ? errno : ENOMEM));
  gzbuffer(gz, 128 * 1024);
  out.clear();
  char buffer[64 * 1024];
  int n = 0;
  while ((n = gzread(gz, buffer, sizeof buffer)) > 0) {
    out.append(buffer, size_t(n));
    if (out.size() > limit) break;
  }
  int err = Z_OK;
  std::string why = gzerror(gz, &err);
  gzclose(gz);
  if (n < 0) return store::Status::error(EIO, "cannot read it: " + why);
  if (err == Z_BUF_ERROR) return store::Status::error(EIO, "cannot read it: the gzip data is cut short");
  return store::Status::success();
}

// The value of top-level field `field` of a JSON object as an id: a string
// as it is, a number as written; "" if there is none.
std::string id_field_of(const nlohmann::json& doc, const std::string& field) {
  if (!doc.is_object()) return "";
  auto it = doc.find(field);
  if (it == doc.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return "";
}

// The top-level "id" field of a JSON object as id_field_of() gives it,
// read only as far as that field (no document is built): a file's check
// against its name costs a scan of its first bytes, not a parse of all.
class IdFinder : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string found;

  bool null() override { return value(""); }
  bool boolean(bool) override { return value(""); }
  bool number_integer(number_integer_t v) override { return value(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(std::to_string(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(nlohmann::json(v).dump()); }
  bool string(string_t& v) override { return value(v); }
  bool binary(binary_t&) override { return value(""); }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    at_id_ = depth_ == 1 && top_is_object_ && k == "id";
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool value(const std::string& v) {
    if (!at_id_) return true;
    found = v;
    return false;  // found: read no further
  }
  bool open(bool object) {
    if (at_id_) return false;  // an object or array as the id: none
    if (depth_++ == 0) top_is_object_ = object;
    return true;
  }
  bool close() {
    --depth_;
    at_id_ = false;
    return true;
  }
  int depth_ = 0;
  bool top_is_object_ = false;
  bool at_id_ = false;
};

std::string top_level_id(const std::string& bytes) {
  IdFinder finder;
  nlohmann::json::sax_parse(bytes, &finder, nlohmann::json::input_format_t::json, false);
  return finder.found;
}

// Reads JSON Lines from a gzFile a line at a time, lines of any length up to
// a limit (a longer one is read past and reported).
class LineReader {
 public:
  explicit LineReader(gzFile gz) : gz_(gz) {}
  // False at the end. `too_long` when the line passed `limit` (then `line`
  // holds its start only).
  bool next(std::string& line, uint64_t limit, bool& too_long) {
    line.clear();
    too_long = false;
    bool any = false;
    while (true) {
      if (pos_ == end_) {
        int n = gzread(gz_, buffer_, sizeof buffer_);
        if (n <= 0) {
          if (n < 0) error_ = true;
          return any;
        }
        pos_ = 0;
        end_ = size_t(n);
      }
      any = true;
      const char* start = buffer_ + pos_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      size_t take = nl ? size_t(nl - start) : end_ - pos_;
      if (!too_long) line.append(start, take);
      if (line.size() > limit) {
        too_long = true;
        line.resize(size_t(std::min<uint64_t>(limit, 64)));
      }
      pos_ += take;
      if (nl) {
        ++pos_;
        return true;
      }
    }
  }
  bool failed() const { return error_; }

 private:
  gzFile gz_;
  char buffer_[64 * 1024];
  size_t pos_ = 0, end_ = 0;
  bool error_ = false;
};

// The counts and reasons of one import.
class Tally {
 public:
  // The pipeline's report of one item (the store decides, in the write,
  // whether it was there and whether it was unchanged).
  void report(const std::string& origin, const store::Status& status, uint64_t size, bool replaced) {
    if (status.ok()) {
      ++(replaced ? changed : added);
      bytes += size;
    } else if (status.code == kUnchanged) {
      ++unchanged;
    } else {
      skip(origin, status);
    }
  }
  void skip(const std::string& origin, const store::Status& status) {
    ++skipped;
    ++reasons[reason(status)];
    std::cerr << "itemfs import: skipped " << origin << ": " << status.message << "\n";
  }
  void misnamed(const std::string& path, const std::string& id) {
    std::lock_guard lock(mutex_);
    misnamed_.emplace_back(path, id);
  }
  std::vector<std::pair<std::string, std::string>> misnamed_files() {
    std::lock_guard lock(mutex_);
    std::sort(misnamed_.begin(), misnamed_.end());
    return misnamed_;
  }

  uint64_t added = 0, changed = 0, unchanged = 0, skipped = 0, bytes = 0;
  std::map<std::string, uint64_t> reasons;

 private:
  // A few words for why, to count skips by.
  static std::string reason(const store::Status& status) {
    const std::string& m = status.message;
    if (status.code == EFBIG) return "too large";
    if (m.starts_with("invalid JSON")) return "invalid JSON";
    if (m.starts_with("no \"") || m.starts_with("no id")) return "no id";
    if (status.code == ENAMETOOLONG || m.find(" id") != std::string::npos) return "bad id";
    if (status.code == EIO) return "unreadable";
    return m.substr(0, m.find(':'));
  }

  std::mutex mutex_;  // misnamed_: added to by the workers
  std::vector<std::pair<std::string, std::string>> misnamed_;
};

class Importer {
 public:
  Importer(store::Store& store, const ImportOptions& options, uint64_t total_bytes)
      : store_(store),
        options_(options),
        limit_(store.options().max_item_size),
        progress_("import", Progress::Unit::kBytes, total_bytes),
        pipeline_(
            store, pipeline_options(),
            [this](const std::string& origin, const store::Status& status, uint64_t size, bool replaced) {
              tally_.report(origin, status, size, replaced);
            },
            [this] {
              trimmer_.tick(++batches_);
              draw();
            }) {}

  void add_json_file(const Input& in) {
    read_ += in.size;
    pipeline_.add(in.path, [this, path = in.path](std::string& id, std::string& bytes, store::Attrs& attrs) {
      id = id_of_file(path);
      struct stat st {};
      if (stat(path.c_str(), &st) != 0) return store::Status::error(EIO, std::strerror(errno));
      if (store::Status s = read_whole(path, limit_, bytes); !s.ok()) return s;
      attrs = {uint32_t(S_IFREG | (st.st_mode & 07777)), st.st_uid, st.st_gid, mtime_ns_of(st)};
      // A file whose "id" field names another item is stored under its
      // file name (export and import round-trip) and listed.
      if (bytes.find("\"id\"") != std::string::npos) {
        if (std::string named = top_level_id(bytes); !named.empty() && named != id) tally_.misnamed(path, named);
      }
      return store::Status::success();
    });
    draw();
  }

  void add_lines(const Input& in) {
    gzFile gz = in.path == "-" ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(in.path.c_str(), "rb");
    const std::string name = in.path == "-" ? "stdin" : in.path;
    if (!gz) return tally_.skip(name, store::Status::error(EIO, std::strerror(errno ? errno : ENOMEM)));
    gzbuffer(gz, 128 * 1024);
    const uint64_t base = read_;
    LineReader reader(gz);
    std::string line;
    bool too_long = false;
    const uint32_t uid = getuid(), gid = getgid();
    for (uint64_t number = 1; reader.next(line, limit_, too_long); ++number) {
      const std::string origin = name + ":" + std::to_string(number);
      if (too_long) {
        tally_.skip(origin, store::Status::error(EFBIG, "the line is longer than the largest item (" +
                                                            std::to_string(limit_) + " bytes)"));
        continue;
      }
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const uint64_t line_size = line.size();
      pipeline_.add(origin, [this, line = std::move(line), uid, gid](std::string& id, std::string& bytes,
                                                                     store::Attrs& attrs) {
        auto doc = nlohmann::json::parse(line, nullptr, false);
        if (doc.is_discarded()) return store::Status::error(EINVAL, "invalid JSON");
        if (!options_.id_from_url.empty()) {
          std::string url = id_field_of(doc, options_.id_from_url);
          if (url.empty())
            return store::Status::error(EINVAL, "no \"" + options_.id_from_url + "\" field to make the id from");
          id = id_from_url(url);
        } else {
          id = id_field_of(doc, options_.id_field);
          if (id.empty()) return store::Status::error(EINVAL, "no \"" + options_.id_field + "\" field to name the item");
        }
        bytes = line;
        attrs = store::Attrs{S_IFREG | 0644, uid, gid, store::kMtimeNow};
        return store::Status::success();
      }, line_size);
      line = std::string();
      if (in.path != "-") read_ = base + uint64_t(std::max<z_off_t>(gzoffset(gz), 0));
      draw();
    }
    int err = Z_OK;
    const char* why = gzerror(gz, &err);
    if (reader.failed() || err == Z_BUF_ERROR)  // Z_BUF_ERROR: a gzip stream cut short
      tally_.skip(name, store::Status::error(EIO, std::string("reading stopped: ") +
                                                      (err == Z_BUF_ERROR ? "the gzip data is cut short" : why)));
    gzclose(gz);
    read_ = base + in.size;
  }

  void refuse(const std::string& origin, const std::string& why) {
    tally_.skip(origin, store::Status::error(EINVAL, why));
  }

  int finish() {
    pipeline_.finish();
    // The dictionaries trained meanwhile, and the items compressed again
    // with them: the store as this import leaves it.
    store_.wait_idle();
    progress_.finish();
    const double seconds = progress_.seconds();
    auto misnamed = tally_.misnamed_files();
    const uint64_t stored = tally_.added + tally_.changed;
    if (options_.json) {
      nlohmann::json out = {{"added", tally_.added},       {"changed", tally_.changed},
                            {"unchanged", tally_.unchanged}, {"skipped", tally_.skipped},
                            {"skip_reasons", tally_.reasons}, {"bytes", tally_.bytes},
                            {"seconds", seconds},            {"id_differs_from_name", misnamed.size()}};
      std::cout << out.dump() << "\n";
    } else {
      std::string reasons;
      for (const auto& [why, n] : tally_.reasons) reasons += (reasons.empty() ? "" : ", ") + std::to_string(n) + " " + why;
      char rate[64];
      std::snprintf(rate, sizeof rate, "%.1f MB in %.1f s, %.0f items/s", double(tally_.bytes) / 1e6, seconds,
                    seconds > 0 ? double(stored + tally_.unchanged) / seconds : 0.0);
      std::cerr << tally_.added << " added, " << tally_.changed << " changed, " << tally_.unchanged << " unchanged, "
                << tally_.skipped << " skipped" << (reasons.empty() ? "" : " (" + reasons + ")") << "; " << rate
                << "\n";
    }
    if (!misnamed.empty()) {
      std::cerr << "itemfs import: " << misnamed.size()
                << " file(s) have an \"id\" field that is not their name; each is stored under its file name:\n";
      for (size_t i = 0; i < misnamed.size() && i < 10; ++i)
        std::cerr << "  " << misnamed[i].first << " (\"id\": " << nlohmann::json(misnamed[i].second).dump() << ")\n";
      if (misnamed.size() > 10) std::cerr << "  and " << misnamed.size() - 10 << " more\n";
    }
    return tally_.skipped ? 1 : 0;
  }

 private:
  // Unchanged items (same bytes and attributes; a JSON line's mtime is
  // "now" and not compared) are decided by the store inside the write, so
  // an earlier line of the same id in this run counts.
  static store::PutPipeline::Options pipeline_options() {
    store::PutPipeline::Options o;
    o.skip_unchanged = true;
    return o;
  }

  void draw() {
    progress_.update(read_, std::to_string(tally_.added + tally_.changed + tally_.unchanged) + " items");
  }

  store::Store& store_;
  const ImportOptions& options_;
  const uint64_t limit_;
  uint64_t read_ = 0;  // input bytes handed to the pipeline
  // Freed memory given back after the batches that freed enough of it
  // (see cli_import()).
  MemoryTrimmer trimmer_;
  uint64_t batches_ = 0;
  Tally tally_;
  Progress progress_;
  store::PutPipeline pipeline_;  // last: its workers stop before the rest goes
};

}  // namespace

std::string id_from_url(std::string_view url) { return base::to_hex(base::sha256_of(url)).substr(0, 16); }

namespace {

// Calls `fn` for every file under `dir` that import takes, in sorted order:
// each directory's names sorted, a subdirectory walked where its name
// falls. Only one directory's names are held at a time, not every path of
// the tree (a million files would be a hundred megabytes of paths).
// Returns why a directory could not be read ("" when all could).
std::string walk_sorted(const stdfs::path& dir, const std::function<void(Input)>& fn) {
  std::error_code ec;
  struct Entry {
    std::string name;
    bool is_dir;
  };
  std::vector<Entry> entries;
  for (auto it = stdfs::directory_iterator(dir, ec); !ec && it != stdfs::directory_iterator(); it.increment(ec))
    entries.push_back({it->path().filename().string(), it->is_directory(ec) && !it->is_symlink(ec)});
  if (ec) return dir.string() + ": " + ec.message();
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  std::string failed;
  for (const Entry& e : entries) {
    const stdfs::path path = dir / e.name;
    if (e.is_dir) {
      if (std::string why = walk_sorted(path, fn); failed.empty()) failed = why;
    } else if (auto kind = kind_of(e.name); kind && stdfs::is_regular_file(path, ec)) {
      fn({path.string(), *kind, uint64_t(stdfs::file_size(path, ec))});
    }
  }
  return failed;
}

}  // namespace

int run_import(store::Store& store, const std::vector<std::string>& paths, const ImportOptions& options) {
  // A first look at every input, so that progress knows the total; the
  // files of a directory are found again when they are imported.
  std::vector<std::pair<std::string, std::string>> refused;
  uint64_t total = 0;
  bool from_stdin = false;
  for (const std::string& arg : paths) {
    std::error_code ec;
    if (arg == "-") {
      from_stdin = true;
    } else if (stdfs::is_directory(arg, ec)) {
      if (std::string why = walk_sorted(arg, [&](const Input& in) { total += in.size; }); !why.empty())
        refused.emplace_back(arg, "cannot read the directory " + why);
    } else if (kind_of(stdfs::path(arg).filename().string())) {
      const uint64_t size = stdfs::file_size(arg, ec);
      total += ec ? 0 : size;
    } else {
      refused.emplace_back(arg, stdfs::exists(arg, ec) ? "not a directory, .json, .jsonl or .ndjson file (gzipped or not)"
                                                        : "no such file or directory");
    }
  }
  // Standard input has no size: the total is then unknown.
  if (from_stdin) total = 0;
  Importer importer(store, options, total);
  for (const auto& [path, why] : refused) importer.refuse(path, why);
  auto add = [&](const Input& in) {
    if (in.kind == Kind::kJson) importer.add_json_file(in);
    else importer.add_lines(in);
  };
  for (const std::string& arg : paths) {
    std::error_code ec;
    if (arg == "-") {
      add({arg, Kind::kLines, 0});
    } else if (stdfs::is_directory(arg, ec)) {
      walk_sorted(arg, add);
    } else if (auto kind = kind_of(stdfs::path(arg).filename().string())) {
      const uint64_t size = stdfs::file_size(arg, ec);
      add({arg, *kind, ec ? 0 : size});
    }
  }
  return importer.finish();
}

}  // namespace itemfs::fs
