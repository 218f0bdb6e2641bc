// The offline commands of the itemfs binary (DESIGN.md §2).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace itemfs::fs {

// A directory holds a store when DIR/store.db is a regular file. Only
// `mount` and `import` make a new one (and say so on stderr); every other
// command refuses a path without one, exit status 1, creating nothing.
bool store_exists(const std::filesystem::path& dir);
// Says on stderr that `dir` holds no store; returns the exit status (1).
int no_store(const std::filesystem::path& dir);
// Says on stderr that a new store was made at `dir`.
void say_created(const std::filesystem::path& dir);

// Each takes the words after the command name and returns an exit code.
int cli_import(const std::vector<std::string>& args);
int cli_export(const std::vector<std::string>& args);
int cli_stats(const std::vector<std::string>& args);
int cli_fsck(const std::vector<std::string>& args);
int cli_search(const std::vector<std::string>& args);
int cli_reindex(const std::vector<std::string>& args);
int cli_backup(const std::vector<std::string>& args);

}  // namespace itemfs::fs
