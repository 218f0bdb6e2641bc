// libFuzzer target: a backup archive from arbitrary bytes, through the code
// that verify and restore use (path traversal, huge sizes,
// truncated streams).
//
// Input: one mode byte, then the archive. Mode bit 1 set: the bytes are a
// plain tar that the target gzips first (so that mutations reach the tar
// headers and MANIFEST.json instead of breaking the gzip stream). Bit 0 set:
// the result is then encrypted with the target's key (AES-256-GCM chunks), so
// that the reader behind the decryption sees it too. Neither: the bytes are
// the archive file as it is (a tar.gz, or anything). The archive is read directly (TarReader, and
// DecryptSource when it starts like an encrypted file), then, when its first
// entry is a MANIFEST.json naming a backup id, installed as that backup (with
// manifest.json and the .sha256 sidecar made to match) and run through
// `verify ID` and `restore ID clear` of a backup::Manager on a real store.
//
// What must hold besides "no crash": decryption gives back what was encrypted;
// nothing is ever written outside the store's directory (the directories above
// it stay as they were, and below it only the store's own files and the
// backup appear); a job leaves no temporary files; after a restore that
// succeeded, the store holds exactly the manifest's items.
//
// ITEMFS_FUZZ_VERBOSE=1 prints what each restore did. With ITEMFS_FUZZ_SEEDS=DIR set, it first writes seed inputs into DIR (a real
// full backup, plain and for the encrypted mode, hostile entry names, a huge
// declared size, a truncated stream).
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/io.h"
#include "backup/manifest.h"
#include "backup/util.h"
#include "store/store.h"

namespace fs = std::filesystem;
using namespace itemfs;
using namespace itemfs::backup;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "archive_fuzz: %s\n", why.c_str());
  std::abort();
}

class MemSource : public ByteSource {
 public:
  explicit MemSource(std::string_view b) : b_(b) {}
  size_t read(void* buf, size_t cap) override {
    size_t n = std::min(cap, b_.size() - pos_);
    std::memcpy(buf, b_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

class StringSink : public ByteSink {
 public:
  void write(const void* data, size_t size) override { out.append(static_cast<const char*>(data), size); }
  void finish() override {}
  std::string out;
};

struct World {
  fs::path base;   // .../itemfs-archive-fuzz.XXXXXX: holds only a/
  fs::path root;   // base/a/b/root: the store and the key live here
  fs::path store_dir, backups, key_file;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Key> key;
  std::set<std::string> baseline;  // below root once the store is open
};

std::set<std::string> listing(const fs::path& dir);

World& world() {
  static World* w = [] {
    auto* x = new World;
    const char* tmp = std::getenv("TMPDIR");
    std::string where = fs::is_directory("/dev/shm") ? "/dev/shm" : (tmp ? tmp : "/tmp");
    std::string templ = where + "/itemfs-archive-fuzz.XXXXXX";
    if (!::mkdtemp(templ.data())) die("mkdtemp failed");
    x->base = templ;
    // Deep enough that "../" names would land in a directory we watch.
    x->root = x->base / "a" / "b" / "root";
    fs::create_directories(x->root);
    x->store_dir = x->root / "store";
    x->backups = x->store_dir / "backups";
    x->key_file = x->root / "key";
    std::ofstream(x->key_file, std::ios::binary) << std::string(32, '\x5a');
    store::Options so;
    so.train_dictionary = false;
    x->store = store::Store::open(x->store_dir, so);
    x->key = load_key(x->key_file);
    x->baseline = listing(x->root);
    std::atexit([] { std::error_code ec; fs::remove_all(world().base, ec); });
    return x;
  }();
  return *w;
}

// Everything below `dir`, as paths relative to it.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    out.insert(fs::relative(it->path(), dir).string());
  }
  return out;
}

void check_nothing_outside(World& w, const std::string& id) {
  for (const auto& p : listing(w.base)) {
    if (p != "a" && p != "a/b" && p != "a/b/root" && p.rfind("a/b/root/", 0) != 0) {
      die("a file appeared outside the store's directory: " + p);
    }
  }
  for (const auto& p : listing(w.root)) {
    bool ok = w.baseline.count(p) || p == "store/store.db-wal" || p == "store/store.db-shm" ||
              p == "store/store.db-journal" || p.rfind("store/staging/", 0) == 0 || p == "store/backups" ||
              p == "store/backups/.lock" ||
              (!id.empty() && (p == "store/backups/" + id || p.rfind("store/backups/" + id + "/", 0) == 0));
    if (!ok) die("unexpected file after a job: " + p);
  }
}

// Reads every entry and all its data; true if the whole archive was read.
bool read_all(ByteSource& src, std::string* manifest) {
  try {
    TarReader tar(src);
    TarEntry e;
    std::vector<char> buf(64 * 1024);
    bool first = true;
    while (tar.next(e)) {
      bool keep = first && manifest && e.path == "MANIFEST.json" && e.regular;
      for (size_t n; (n = tar.read(buf.data(), buf.size())) > 0;) {
        if (keep && manifest->size() < (4u << 20)) manifest->append(buf.data(), n);
      }
      first = false;
    }
    return true;
  } catch (const JobError&) {
    return false;
  }
}

std::string encrypt(const std::string& plain, const Key& key) {
  StringSink out;
  EncryptSink enc(out, key);
  enc.write(plain.data(), plain.size());
  enc.finish();
  return out.out;
}

std::string gzip(const std::string& raw);

void run_one(const uint8_t* data, size_t size) {
  World& w = world();
  if (size < 1) return;
  bool encrypt_it = data[0] & 1;
  std::string payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 2) payload = gzip(payload);

  // The reader alone.
  std::string manifest_text;
  std::string file = payload;
  if (encrypt_it) {
    file = encrypt(payload, *w.key);
    MemSource raw(file);
    StringSink back;
    try {
      DecryptSource dec(raw, *w.key, "fuzz");
      std::vector<char> buf(64 * 1024);
      for (size_t n; (n = dec.read(buf.data(), buf.size())) > 0;) back.write(buf.data(), n);
    } catch (const JobError& e) {
      die(std::string("cannot decrypt what was just encrypted: ") + e.what());
    }
    if (back.out != payload) die("decryption does not give back the plaintext");
    MemSource raw2(file);
    DecryptSource dec2(raw2, *w.key, "fuzz");
    read_all(dec2, &manifest_text);
  } else {
    MemSource src(file);
    read_all(src, &manifest_text);
    if (file.size() >= 8 && std::memcmp(file.data(), "ITEMFSGC", 8) == 0) {
      try {
        MemSource raw(file);
        DecryptSource dec(raw, *w.key, "fuzz");
        read_all(dec, nullptr);
      } catch (const JobError&) {
      }
    }
  }

  // As a backup of the store: verify, then restore (which verifies again).
  Manifest summary;
  try {
    std::istringstream in(manifest_text);
    read_manifest(in, true, summary, "fuzz");
  } catch (const JobError& e) {
    if (std::getenv("ITEMFS_FUZZ_VERBOSE")) std::fprintf(stderr, "archive_fuzz: no MANIFEST.json: %s\n", e.what());
    check_nothing_outside(w, "");
    return;
  }
  const std::string& id = summary.id;
  if (!valid_backup_id(id)) return;
  fs::path bdir = w.backups / id;
  std::error_code ec;
  fs::remove_all(w.backups, ec);
  fs::create_directories(bdir);
  std::string name = id + (summary.encrypted ? ".tar.gz.enc" : ".tar.gz");
  {
    FileSink out(bdir / name);
    out.write(file.data(), file.size());
    out.finish();
    store::Sha256 d = out.sha256();
    std::ofstream(bdir / (name + ".sha256"), std::ios::binary) << hex(d.data(), d.size()) << "  " << name << "\n";
  }
  std::ofstream(bdir / "manifest.json", std::ios::binary) << manifest_text;

  Options opt;
  opt.dir = w.backups;
  opt.key_file = w.key_file;
  Manager mgr(*w.store, opt);
  mgr.run("verify " + id);
  store::Status restored = mgr.run("restore " + id + " clear");
  if (std::getenv("ITEMFS_FUZZ_VERBOSE")) {
    std::fprintf(stderr, "archive_fuzz: %s: restore: %s\n", id.c_str(), restored.ok() ? "ok" : restored.message.c_str());
  }
  check_nothing_outside(w, id);

  // After a restore, the store is the manifest's map (and every id valid).
  std::unique_ptr<Manifest> full;
  if (restored.ok()) {
    full = std::make_unique<Manifest>();
    std::istringstream in(manifest_text);
    try {
      read_manifest(in, false, *full, "fuzz");
    } catch (const JobError&) {
      die("restore succeeded on a manifest that does not parse");
    }
  }
  size_t count = 0;
  auto snap = w.store->snapshot();
  snap->for_each_item([&](const store::ItemInfo& info) {
    if (!store::check_id(info.id).ok()) die("the store holds an invalid id: " + info.id);
    if (!S_ISREG(info.attrs.mode)) die("the store holds an item that is not a regular file: " + info.id);
    ++count;
    if (!full) return;
    auto it = full->items.find(info.id);
    if (it == full->items.end()) die("restored store holds " + info.id + ", which the backup does not");
    const ItemMeta& m = it->second;
    // (An mtime of 0 means "now" to the store.)
    if (m.sha256 != info.sha256 || m.size != info.size || m.mode != info.attrs.mode || m.uid != info.attrs.uid ||
        m.gid != info.attrs.gid || (m.mtime_ns != 0 && m.mtime_ns != info.attrs.mtime_ns)) {
      die("restored item " + info.id + " differs from the manifest");
    }
  });
  if (full && count != full->items.size()) die("restore left items of the backup out");
  fs::remove_all(w.backups, ec);
}

// --- seeds -----------------------------------------------------------------

void put(store::Store& s, const std::string& id, const std::string& bytes, uint32_t mode, int64_t mtime) {
  s.write([&](store::WriteBatch& b) {
    std::istringstream in(bytes);
    b.put(id, in, store::Attrs{mode, 0, 0, mtime});
  });
}

void save(const fs::path& dir, const std::string& name, char mode, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary) << mode << bytes;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string gunzip(const std::string& gz) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) die("inflateInit2 failed");
  std::string out;
  std::vector<unsigned char> buf(1 << 16);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc;
  do {
    z.next_out = buf.data();
    z.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&z);
  return out;
}

std::string gzip(const std::string& raw) {
  StringSink out;
  GzipSink gz(out, 6);
  gz.write(raw.data(), raw.size());
  gz.finish();
  return out.out;
}

// A ustar header written by hand, so that it can lie about the size.
std::string ustar_header(const std::string& name, const std::string& octal_size, char type = '0') {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(&h[100], "0000644", 7);
  std::memcpy(&h[108], "0000000", 7);
  std::memcpy(&h[116], "0000000", 7);
  std::memcpy(&h[124], octal_size.data(), std::min<size_t>(octal_size.size(), 11));
  std::memcpy(&h[136], "14000000000", 11);
  h[156] = type;
  std::memcpy(&h[257], "ustar", 6);
  std::memcpy(&h[263], "00", 2);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06o", sum);
  std::memcpy(&h[148], buf, 7);
  return h;
}

void make_seeds(const fs::path& out) {
  fs::create_directories(out);
  char templ[] = "/tmp/itemfs-archive-seeds.XXXXXX";
  if (!::mkdtemp(templ)) die("mkdtemp failed");
  fs::path tmp = templ;
  {
    auto s = store::Store::open(tmp / "store");
    put(*s, "ab1", "{\"title\": \"one\"}", 0100644, 1700000000123456789);
    put(*s, "\xc3\xa9t\xc3\xa9", "[1, 2]", 0100600, 1600000000000000001);
    put(*s, "z", "\"s\"", 0100444, 1500000000000000000);
    Options opt;
    opt.dir = tmp / "plain";
    Manager(*s, opt).run("full");
    for (const auto& e : fs::directory_iterator(opt.dir)) {
      if (!e.is_directory()) continue;
      std::string id = e.path().filename().string();
      std::string archive = slurp(e.path() / (id + ".tar.gz"));
      save(out, "full", 0, archive);
      // The plain tar inside, for the gzip-it-first modes.
      save(out, "full-tar", 2, gunzip(archive));
      save(out, "full-tar-encrypted", 3, gunzip(archive));
      save(out, "truncated", 0, archive.substr(0, archive.size() / 2));
      std::string flipped = archive;
      flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 1);
      save(out, "flipped", 0, flipped);

      // The same MANIFEST.json, then hostile entries.
      std::string manifest = slurp(e.path() / "manifest.json");
      StringSink hostile;
      {
        TarWriter tw(hostile, 6);
        auto entry = [&](const std::string& name, const std::string& bytes) {
          tw.begin(name, bytes.size(), 0644, 0, 0, 1700000000000000000);
          tw.data(bytes.data(), bytes.size());
          tw.end();
        };
        entry("MANIFEST.json", manifest);
        entry("SHA256SUMS", "");
        for (const char* n : {"../evil.json", "/tmp/evil.json", "items/ab/../../evil.json", "items/ab/ab1.json/x",
                              "items/../../../evil.json", "items/z/z.json", "items/00/z.json"}) {
          entry(n, "{}");
        }
        tw.close();
      }
      save(out, "hostile", 0, hostile.out);
      save(out, "hostile-tar", 2, gunzip(hostile.out));
    }
    // Encrypted: the plain tar.gz inside, to be encrypted by the target.
    std::ofstream(tmp / "key", std::ios::binary) << std::string(32, '\x5a');
    opt.dir = tmp / "enc";
    opt.key_file = tmp / "key";
    Manager(*s, opt).run("full");
    for (const auto& e : fs::directory_iterator(opt.dir)) {
      if (!e.is_directory()) continue;
      std::string id = e.path().filename().string();
      std::ostringstream plain;
      decrypt(e.path() / (id + ".tar.gz.enc"), tmp / "key", plain);
      save(out, "encrypted", 1, plain.str());
      save(out, "encrypted-raw", 0, slurp(e.path() / (id + ".tar.gz.enc")));
    }
  }
  // A header that declares 8 GiB, followed by a few bytes; a symlink; a
  // hard link; names with NUL-free dot segments.
  std::string raw = ustar_header("MANIFEST.json", "77777777777") + std::string(600, 'x');
  save(out, "huge", 2, raw);
  raw = ustar_header("items/ab/ab1.json", "00000000000", '2') + ustar_header("../x", "00000000000", '1') +
        std::string(1024, '\0');
  save(out, "links", 2, raw);
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seeds = std::getenv("ITEMFS_FUZZ_SEEDS")) make_seeds(seeds);
  world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run_one(data, size);
  } catch (const JobError&) {
    // Failures inside the target's own set-up for an input (not the code
    // under test, whose failures are Status values).
  } catch (const store::StoreError& e) {
    die(std::string("store error escaped: ") + e.what());
  }
  return 0;
}
