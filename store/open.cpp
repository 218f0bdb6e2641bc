// Opening a store: the backend, then what a journal of accepted writes
// left behind applied (journal.h), then, for Options::journal, the
// AcceptingStore on top. Also Store::accept for stores without a journal.

#include <unistd.h>

#include <cerrno>
#include <istream>
#include <vector>

#include "store/accepting_store.h"
#include "store/journal.h"

namespace itemfs::store {

namespace sqlite {
std::unique_ptr<Store> open_sqlite(const std::filesystem::path& dir, const Options& options);
}

Status Store::accept(std::string_view id, std::istream& content, const Attrs& attrs, ItemInfo* stored) {
  Status status;
  write([&](WriteBatch& batch) { status = batch.put(id, content, attrs, stored); });
  return status;
}

namespace {

// Applies the journal's records past the store's recorded position, in
// groups like the committer's. A record the store refuses now (it was
// checked when accepted: only a changed limit or a constraint of the store
// can do that) is left out and logged, as the committer does.
void replay(Store& store, Journal& journal) {
  std::vector<JournalRecord> group;
  size_t bytes = 0;
  auto apply = [&](size_t from, size_t to) {
    store.write([&](WriteBatch& batch) {
      for (size_t k = from; k < to; ++k) {
        const JournalRecord& r = group[k];
        if (Status status = put_accepted(batch, r.id, r.bytes, r.attrs, r.ino); !status.ok())
          log_dropped(r.id, status.message);
      }
      batch.set_journal_position(group[to - 1].end);
    });
  };
  auto commit = [&] {
    if (group.empty()) return;
    try {
      apply(0, group.size());
    } catch (const std::exception&) {
      // One by one, to find the record that cannot be stored.
      for (size_t k = 0; k < group.size(); ++k) {
        try {
          apply(k, k + 1);
        } catch (const std::exception& e) {
          if (!cannot_ever_commit(e)) throw;
          store.write([&](WriteBatch& batch) { batch.set_journal_position(group[k].end); });
          log_dropped(group[k].id, e.what());
        }
      }
    }
    group.clear();
    bytes = 0;
  };
  journal.replay(store.journal_position(), [&](JournalRecord& r) {
    bytes += r.bytes.size();
    group.push_back(std::move(r));
    if (group.size() >= AcceptingStore::kGroupItems || bytes >= AcceptingStore::kGroupBytes) commit();
  });
  commit();
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::filesystem::path& dir, const Options& options) {
  std::error_code ec;
  if (options.read_only) {
    // A journal a dead process left with records in it is applied first,
    // so that a command that only reads sees every accepted write.
    if (std::filesystem::file_size(dir / "journal", ec) > Journal::kHeaderBytes && !ec && ::access(dir.c_str(), W_OK) == 0 &&
        Journal::take(dir)) {
      Options writable = options;
      writable.read_only = false;
      writable.journal = false;
      Store::open(dir, writable).reset();
    }
    return sqlite::open_sqlite(dir, options);
  }
  auto store = sqlite::open_sqlite(dir, options);
  if (!options.journal && !std::filesystem::exists(dir / "journal", ec)) return store;
  auto journal = Journal::take(dir);
  if (!journal) return store;  // another process's, which applies it itself
  const uint64_t applied = store->journal_position();
  if (journal->end() < applied) journal->restart_at(applied);  // the journal was lost: go on after it
  replay(*store, *journal);
  if (options.journal) return std::make_unique<AcceptingStore>(std::move(store), std::move(journal));
  journal->restart();  // all applied
  return store;
}

}  // namespace itemfs::store
