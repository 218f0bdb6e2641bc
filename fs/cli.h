// The offline commands of the itemfs binary (DESIGN.md §2).
#pragma once

#include <string>
#include <vector>

namespace itemfs::fs {

// Each takes the words after the command name and returns an exit code.
int cli_import(const std::vector<std::string>& args);
int cli_export(const std::vector<std::string>& args);
int cli_stats(const std::vector<std::string>& args);
int cli_fsck(const std::vector<std::string>& args);
int cli_search(const std::vector<std::string>& args);
int cli_reindex(const std::vector<std::string>& args);
int cli_backup(const std::vector<std::string>& args);

}  // namespace itemfs::fs
