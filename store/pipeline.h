// Puts many items into a store on more than one core: worker threads load
// and prepare them (Store::prepare: read, validate, hash, compress, the
// hooks' text extraction) while the thread that adds them writes them, in
// the order added, in batches (WriteBatch::put_prepared), one transaction a
// batch. The store ends up exactly as if the items had been put one by one
// with WriteBatch::put() in batches of the same sizes: the same items,
// blobs, dictionary and index rows.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace itemfs::store {

class PutPipeline {
 public:
  struct Options {
    unsigned workers = 0;         // 0: one per core
    size_t batch_items = 500;          // a batch commits once it holds this many items
    uint64_t batch_bytes = 16u << 20;  // or this many bytes
    size_t window_items = 1000;        // items added but not written yet, at most
    uint64_t window_bytes = 32u << 20;  // bytes loaded but not written yet, about
    // Items stored already with the same bytes and attributes are not written
    // again: reported with EALREADY (PreparedItem::skip_if_unchanged()).
    bool skip_unchanged = false;
  };
  // Runs on a worker: fills in the item's id, bytes and attributes, or
  // returns why it cannot (the item is then skipped with that reason).
  using Load = std::function<Status(std::string& id, std::string& bytes, Attrs& attrs)>;
  // Runs on the adding thread, once for each item in the order added: ok
  // with its size when stored, else why it was skipped; `replaced` (with
  // skip_unchanged only): an item of its id was there.
  using Report = std::function<void(const std::string& origin, const Status& status, uint64_t size, bool replaced)>;

  PutPipeline(Store& store, Options options, Report report, std::function<void()> after_batch = {});
  // Stops the workers; what was added but not finished is not stored.
  ~PutPipeline();
  PutPipeline(const PutPipeline&) = delete;
  PutPipeline& operator=(const PutPipeline&) = delete;

  // Queues one item; writes earlier ones when the window is full (by items,
  // or by bytes: `size_hint` is what `load` holds already, e.g. a JSON line,
  // counted until a worker runs it). Throws what a load, prepare or write
  // threw (StoreError, ...).
  void add(std::string origin, Load load, uint64_t size_hint = 0);
  // Writes everything added, the last batch included.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itemfs::store
