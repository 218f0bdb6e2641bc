// One updating line of progress on a terminal, as rsync --info=progress2 and
// restic show it: done/total, percent, rate and time left, redrawn at most
// ten times a second on stderr. Nothing at all when stderr is not a
// terminal (scripts read the summary, or --json). A total of 0 means
// unknown: then only what is done and the rate.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace itemfs::fs {

class Progress {
 public:
  enum class Unit { kItems, kBytes };
  // `what` names the work ("import", "fsck"); `enabled` false: never draws
  // (default: whether stderr is a terminal).
  Progress(std::string what, Unit unit, uint64_t total);
  Progress(std::string what, Unit unit, uint64_t total, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void set_total(uint64_t total) { total_ = total; }
  // What an item of kItems is called in the line ("items" unless set).
  void set_noun(std::string noun) { noun_ = std::move(noun); }
  // `done` of `total`, and a short note after the figures ("1,234 items").
  void update(uint64_t done, const std::string& note = "");
  // Clears the line (a summary is printed after it by the caller).
  void finish();
  bool enabled() const { return enabled_; }
  double seconds() const;

  // The line as drawn, for tests: "import 45% 45.0 MB of 100.0 MB, 2.1 MB/s, 0:27 left".
  static std::string line(const std::string& what, Unit unit, uint64_t done, uint64_t total, double seconds,
                          const std::string& note, const std::string& noun = "items");

 private:
  std::string what_;
  Unit unit_;
  uint64_t total_;
  std::string noun_ = "items";
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace itemfs::fs
