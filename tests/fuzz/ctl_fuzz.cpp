// libFuzzer target: the backups/ctl command parser (pure, never throws).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backup/backup.h"

using namespace itemfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  backup::Command command;
  store::Status status = backup::parse_command(line, command);
  if (status.ok()) {
    using Kind = backup::Command::Kind;
    bool takes_id = command.kind == Kind::kVerify || command.kind == Kind::kRestore || command.kind == Kind::kDelete;
    // An id that reaches the backup directory must be safe as a file name.
    if (takes_id && !backup::valid_backup_id(command.id)) std::abort();
    if (command.keep_last < 0 || command.keep_days < 0) std::abort();
  } else if (status.code != EINVAL || status.message.empty()) {
    std::abort();
  }
  return 0;
}
