#include "fs/progress.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace itemfs::fs {

namespace {

std::string amount(Progress::Unit unit, uint64_t n) {
  char text[32];
  if (unit == Progress::Unit::kBytes) {
    if (n >= (1ull << 30)) std::snprintf(text, sizeof text, "%.2f GB", double(n) / 1e9);
    else std::snprintf(text, sizeof text, "%.1f MB", double(n) / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(n));
  }
  return text;
}

std::string duration(double seconds) {
  auto s = static_cast<unsigned long long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(text, sizeof text, "%llu:%02llu", s / 60, s % 60);
  return text;
}

}  // namespace

Progress::Progress(std::string what, Unit unit, uint64_t total)
    : Progress(std::move(what), unit, total, isatty(STDERR_FILENO) == 1) {}

Progress::Progress(std::string what, Unit unit, uint64_t total, bool enabled)
    : what_(std::move(what)), unit_(unit), total_(total), enabled_(enabled) {}

Progress::~Progress() { finish(); }

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(const std::string& what, Unit unit, uint64_t done, uint64_t total, double seconds,
                           const std::string& note, const std::string& noun) {
  std::string out = what;
  const std::string per = unit == Unit::kBytes ? "/s" : " " + noun + "/s";
  if (total > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3d%%", int(done >= total ? 100 : 100.0 * double(done) / double(total)));
    out += pct;
    out += " " + amount(unit, done) + " of " + amount(unit, total);
  } else {
    out += " " + amount(unit, done);
  }
  if (unit == Unit::kItems) out += " " + noun;
  if (!note.empty()) out += ", " + note;
  if (seconds > 0.2 && done > 0) {
    const double rate = double(done) / seconds;
    out += ", " + amount(unit, uint64_t(rate)) + per;
    if (total > done) out += ", " + duration(double(total - done) / rate) + " left";
  }
  return out;
}

void Progress::update(uint64_t done, const std::string& note) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  // \r to the start, the line, then clear what a longer earlier line left.
  std::cerr << "\r" << line(what_, unit_, done, total_, seconds(), note, noun_) << "\x1b[K" << std::flush;
}

void Progress::finish() {
  if (!enabled_ || !drawn_) return;
  std::cerr << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

}  // namespace itemfs::fs
