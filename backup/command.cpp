// The ctl command language (backup.h: parse_command).
#include <cerrno>
#include <charconv>
#include <string>
#include <vector>

#include "backup/backup.h"

namespace itemfs::backup {

bool valid_backup_id(std::string_view id) {
  if (id.empty() || id.size() > 100 || id[0] == '.' || id[0] == '-') return false;
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return id != "all";
}

namespace {

store::Status bad(std::string why) { return store::Status::error(EINVAL, std::move(why)); }

constexpr const char* kUsage =
    "commands: full | incremental | verify ID | verify all | restore ID [clear | PATTERN...] | "
    "prune keep_last=N keep_days=D | delete ID";

bool parse_count(std::string_view text, int& out) {
  if (text.empty() || text.size() > 7) return false;
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) return false;
  out = v;
  return true;
}

}  // namespace

store::Status parse_command(std::string_view line, Command& out) {
  out = Command{};
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > 1024) return bad("command line too long");
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("one command per write, no control characters");
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && static_cast<unsigned char>(line[j]) >= 0x20 &&
           line[j] != 0x7f) {
      ++j;
    }
    words.push_back(line.substr(i, j - i));
    i = j;
  }
  if (words.empty()) return bad(std::string("empty command; ") + kUsage);
  std::string_view verb = words[0];
  size_t n = words.size();

  auto need_id = [&](std::string_view what) -> store::Status {
    if (n < 2) return bad(std::string(what) + " needs a backup id");
    if (!valid_backup_id(words[1])) return bad("not a backup id: " + std::string(words[1]));
    out.id = std::string(words[1]);
    return {};
  };

  if (verb == "full" || verb == "incremental") {
    if (n != 1) return bad(std::string(verb) + " takes no arguments");
    out.kind = verb == "full" ? Command::Kind::kFull : Command::Kind::kIncremental;
    return {};
  }
  if (verb == "verify") {
    if (n != 2) return bad("usage: verify ID | verify all");
    if (words[1] == "all") {
      out.kind = Command::Kind::kVerifyAll;
      return {};
    }
    out.kind = Command::Kind::kVerify;
    return need_id("verify");
  }
  if (verb == "restore") {
    // restore ID [clear] | restore ID PATTERN...: chosen items by their
    // path in the archive, or a glob of it.
    const char* usage = "usage: restore ID [clear] | restore ID items/SHARD/ID.json|GLOB...";
    if (n < 2) return bad(usage);
    if (n == 3 && words[2] == "clear") {
      out.clear = true;
    } else {
      for (size_t k = 2; k < n; ++k) {
        std::string_view w = words[k];
        if (w == "clear") return bad("restore: clear restores the whole backup; it cannot be combined with chosen items");
        if (w != "items" && !w.starts_with("items/")) {
          return bad(std::string(usage) + "; not an item path or glob: " + std::string(w) +
                     " (e.g. items/ab/abc.json or 'items/ab/*')");
        }
        out.include.emplace_back(w);
      }
    }
    out.kind = Command::Kind::kRestore;
    return need_id("restore");
  }
  if (verb == "delete") {
    if (n != 2) return bad("usage: delete ID");
    out.kind = Command::Kind::kDelete;
    return need_id("delete");
  }
  if (verb == "prune") {
    out.kind = Command::Kind::kPrune;
    bool have_last = false, have_days = false;
    for (size_t k = 1; k < n; ++k) {
      std::string_view w = words[k];
      size_t eq = w.find('=');
      if (eq == std::string_view::npos) return bad("prune takes keep_last=N and/or keep_days=D, not " + std::string(w));
      std::string_view key = w.substr(0, eq), value = w.substr(eq + 1);
      int v = 0;
      if (!parse_count(value, v)) return bad("prune: " + std::string(key) + " needs a whole number >= 0");
      if (key == "keep_last") {
        if (have_last) return bad("prune: keep_last given twice");
        have_last = true;
        out.keep_last = v;
      } else if (key == "keep_days") {
        if (have_days) return bad("prune: keep_days given twice");
        have_days = true;
        out.keep_days = v;
      } else {
        return bad("prune: unknown setting " + std::string(key));
      }
    }
    if (!have_last && !have_days) return bad("usage: prune keep_last=N keep_days=D");
    if (out.keep_last == 0 && out.keep_days == 0) {
      return bad("prune would keep no backup; use delete ID to remove backups one by one");
    }
    return {};
  }
  return bad("unknown command " + std::string(verb) + "; " + kUsage);
}

}  // namespace itemfs::backup
