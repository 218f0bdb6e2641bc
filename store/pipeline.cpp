#include "store/pipeline.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "base/thread_name.h"

namespace itemfs::store {

struct PutPipeline::Impl {
  // One added item, from the queue to its write.
  struct Slot {
    std::string origin;
    Load load;
    Status loaded;  // why the load failed, if it did
    PreparedItem item;
    std::exception_ptr error;
    uint64_t bytes = 0;
    uint64_t hint = 0;  // what add() was told its load holds, until a worker takes it
    bool done = false;
    bool recompress = false;  // done, but to be compressed again (see write_batch)
  };

  Store& store;
  Options options;
  Report report;
  std::function<void()> after_batch;

  std::mutex mu;  // guards the fields below and each slot's `done`
  std::condition_variable work_cv;  // a worker may go on
  std::condition_variable done_cv;  // a slot is done
  // Added and not yet taken by the writer, in order; the first `claimed` of
  // them are taken by workers (done or being prepared).
  std::deque<std::unique_ptr<Slot>> window;
  size_t claimed = 0;
  uint64_t loaded_bytes = 0;  // of done slots in the window and the batch
  uint64_t hinted_bytes = 0;  // size hints of the slots no worker has taken yet
  std::deque<Slot*> recompress;  // done slots of the window to compress again, first come first
  bool stopping = false;
  std::vector<std::thread> workers;

  // The writer's (the adding thread's) own.
  std::vector<std::unique_ptr<Slot>> batch;
  uint64_t batch_bytes = 0;
  int64_t dictionary_id = 0;  // the store's when the last batch was written

  Impl(Store& s, Options o, Report r, std::function<void()> a)
      : store(s), options(o), report(std::move(r)), after_batch(std::move(a)) {
    unsigned n = options.workers ? options.workers : std::max(1u, std::thread::hardware_concurrency());
    options.window_items = std::max<size_t>(options.window_items, 1);
    dictionary_id = store.current_dictionary_id();
    workers.reserve(n);
    try {
      for (unsigned i = 0; i < n; ++i) workers.emplace_back([this] { work(); });
    } catch (...) {
      stop();
      throw;
    }
  }

  ~Impl() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    work_cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  void work() {
    base::name_this_thread("itemfs-prepare");
    std::unique_lock lock(mu);
    for (;;) {
      // Loaded bytes cap how far workers run ahead, except for the slot the
      // writer waits for, so the writer always gets its next one.
      work_cv.wait(lock, [&] {
        return stopping || !recompress.empty() ||
               (claimed < window.size() && (claimed == 0 || loaded_bytes < options.window_bytes));
      });
      if (stopping) return;
      if (!recompress.empty()) {
        Slot* slot = recompress.front();
        recompress.pop_front();
        lock.unlock();
        try {
          store.recompress_if_stale(slot->item);
        } catch (...) {
          slot->error = std::current_exception();
        }
        lock.lock();
        slot->recompress = false;
        done_cv.notify_all();
        continue;
      }
      Slot* slot = window[claimed++].get();
      hinted_bytes -= slot->hint;
      slot->hint = 0;
      lock.unlock();
      prepare(*slot);
      lock.lock();
      slot->done = true;
      loaded_bytes += slot->bytes;
      done_cv.notify_all();
    }
  }

  void prepare(Slot& slot) {
    try {
      std::string id, bytes;
      Attrs attrs;
      slot.loaded = slot.load(id, bytes, attrs);
      slot.load = nullptr;  // what it captured (a JSON line) is not needed now
      if (!slot.loaded.ok()) return;
      slot.bytes = bytes.size();
      slot.item = store.prepare(std::move(id), std::move(bytes), attrs);
      if (options.skip_unchanged) slot.item.skip_if_unchanged();
    } catch (...) {
      slot.error = std::current_exception();
    }
  }

  void add(std::string origin, Load load, uint64_t size_hint) {
    auto slot = std::make_unique<Slot>();
    slot->origin = std::move(origin);
    slot->load = std::move(load);
    slot->hint = size_hint;
    for (;;) {
      {
        std::lock_guard lock(mu);
        // Loads that hold their bytes already (a JSON line) count against
        // the window's bytes too, or long lines would queue without bound.
        const bool room = window.size() < options.window_items &&
                          (window.empty() || hinted_bytes + loaded_bytes + size_hint <= options.window_bytes);
        if (room) {
          hinted_bytes += size_hint;
          window.push_back(std::move(slot));
          break;
        }
      }
      take_next();
    }
    work_cv.notify_one();
  }

  // Waits for the first slot of the window and moves it into the batch
  // (writing the batch when full), or reports why it was skipped.
  void take_next() {
    std::unique_ptr<Slot> slot;
    {
      std::unique_lock lock(mu);
      done_cv.wait(lock, [&] { return !window.empty() && window.front()->done && !window.front()->recompress; });
      slot = std::move(window.front());
      window.pop_front();
      --claimed;
    }
    work_cv.notify_all();  // the window has room again
    if (slot->error) std::rethrow_exception(slot->error);
    if (!slot->loaded.ok()) {
      report(slot->origin, slot->loaded, 0, false);
      return;
    }
    batch_bytes += slot->bytes;
    batch.push_back(std::move(slot));
    if (batch.size() >= options.batch_items || batch_bytes >= options.batch_bytes) write_batch();
  }

  void write_batch() {
    if (batch.empty()) return;
    store.write([&](WriteBatch& b) {
      for (auto& slot : batch) {
        // A dictionary trained by an earlier batch: compress as put() would
        // (the workers have done so for the slots that were ready then).
        store.recompress_if_stale(slot->item);
        Status status = b.put_prepared(slot->item);
        report(slot->origin, status, slot->bytes, slot->item.replaced());
      }
    });
    // The store trains its dictionaries in the background: once they have
    // changed, the items prepared before are compressed again, by the
    // workers, before they are written, so that they are stored as put()
    // would store them.
    const int64_t now = store.current_dictionary_id();
    {
      std::lock_guard lock(mu);
      loaded_bytes -= batch_bytes;
      if (now != dictionary_id) {
        dictionary_id = now;
        for (size_t i = 0; i < claimed; ++i) {
          Slot* slot = window[i].get();
          if (slot->done && !slot->error && slot->loaded.ok() && slot->item.status().ok() &&
              slot->item.dictionary_id() != now) {
            slot->recompress = true;
            recompress.push_back(slot);
          }
        }
      }
    }
    work_cv.notify_all();
    batch.clear();
    batch_bytes = 0;
    if (after_batch) after_batch();
  }

  void finish() {
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (window.empty()) break;
      }
      take_next();
    }
    write_batch();
  }
};

PutPipeline::PutPipeline(Store& store, Options options, Report report, std::function<void()> after_batch)
    : impl_(std::make_unique<Impl>(store, options, std::move(report), std::move(after_batch))) {}

PutPipeline::~PutPipeline() = default;

void PutPipeline::add(std::string origin, Load load, uint64_t size_hint) {
  impl_->add(std::move(origin), std::move(load), size_hint);
}

void PutPipeline::finish() { impl_->finish(); }

}  // namespace itemfs::store
