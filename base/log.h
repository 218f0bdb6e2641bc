// base/log: where the parts under fs/ report what no caller is waiting to
// hear: an accepted write dropped, the space reserve given back, a failed
// dictionary training, SQLite's reports of damage.
//
// The contract:
//  - log_event(line) hands one line (no newline, no "itemfs:" prefix) to the
//    sink set with set_log_sink(): a mount's event log (MNT/log and syslog).
//  - With no sink set, a line goes to stderr as "itemfs: LINE" and is also
//    kept (the last 64), so that a sink set later (a mount's log exists only
//    once its store is open) receives what happened before it, in order.
//  - Thread-safe. The sink is called under a lock, a line at a time: it must
//    not call log_event itself.
#pragma once

#include <functional>
#include <string_view>

namespace itemfs::base {

using LogSink = std::function<void(std::string_view line)>;

void log_event(std::string_view line);
// An empty sink goes back to stderr.
void set_log_sink(LogSink sink);

}  // namespace itemfs::base
