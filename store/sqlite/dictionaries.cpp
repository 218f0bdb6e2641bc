// The store's compression dictionaries: reading them (each kept once read)
// and the current DictionarySet new blobs choose from.

#include "store/sqlite/store_impl.h"

namespace itemfs::store::sqlite {

// The same from any thread.
std::shared_ptr<const DictionarySet> StoreImpl::current_dictionaries() const {
  std::lock_guard lock(current_dict_mutex_);
  return dict_set_;
}

// The dictionary dict_id of a zlib blob; empty for none (or when the
// dictionary is missing: decompressing then finds the blob damaged). The
// view stays valid while the store is open (dicts_ keeps every one read).
std::string_view StoreImpl::dictionary_of(Db& db, int64_t dict_id) {
  if (!dict_id) return {};
  return *load_dictionary(db, dict_id);
}

// A dictionary's bytes, read once and kept (they never change); empty if
// there is no such dictionary.
std::shared_ptr<const std::string> StoreImpl::load_dictionary(Db& db, int64_t dict_id) {
  {
    std::lock_guard lock(dict_mutex_);
    if (auto it = dicts_.find(dict_id); it != dicts_.end()) return it->second;
  }
  auto data = std::make_shared<const std::string>(read_dictionary(db, dict_id).value_or(std::string()));
  std::lock_guard lock(dict_mutex_);
  return dicts_.emplace(dict_id, std::move(data)).first->second;
}

// A dictionary's bytes from the database (stored zlib-compressed, codec
// 1, or as they are, codec 0); nullopt if it is missing or damaged.
std::optional<std::string> StoreImpl::read_dictionary(Db& db, int64_t dict_id) {
  // A format 1 store opened read-only has no codec column.
  auto s = db.cached(dicts_coded_ ? "SELECT data, codec, raw_size FROM dicts WHERE id=?"
                                  : "SELECT data, 0, NULL FROM dicts WHERE id=?");
  s->bind(1, dict_id);
  if (!s->step()) return std::nullopt;
  int64_t codec = s->int64(1);
  if (codec == int64_t(Codec::kRaw)) return std::string(s->blob(0));
  std::string out;
  if (codec != int64_t(Codec::kZlib) || s->is_null(2) || s->int64(2) < 0 ||
      !decompress(s->blob(0), std::string_view(), size_t(s->int64(2)), out))
    return std::nullopt;
  return out;
}

// meta.dict_set names the dictionaries new blobs choose from (ids,
// comma-separated, in the order DictionarySet::choose() takes them: the
// groups' from the largest group, then the general one); a store written
// before there was more than one has meta.current_dict alone.
void StoreImpl::load_dictionary_set() {
  std::vector<int64_t> ids;
  {
    auto s = writer_->cached("SELECT value FROM meta WHERE key='dict_set'");
    if (s->step()) ids = parse_ids(s->text(0));
  }
  if (ids.empty()) {
    auto s = writer_->cached("SELECT value FROM meta WHERE key='current_dict'");
    if (s->step()) ids.push_back(s->int64(0));
  }
  std::vector<std::shared_ptr<const Dictionary>> dictionaries;
  for (int64_t id : ids) {
    auto data = read_dictionary(*writer_, id);
    if (!data) continue;  // fsck reports it
    dictionaries.push_back(make_dictionary(id, std::move(*data)));
  }
  std::lock_guard lock(current_dict_mutex_);
  dict_set_ = std::make_shared<const DictionarySet>(std::move(dictionaries));
}

std::vector<int64_t> StoreImpl::parse_ids(std::string_view text) {
  std::vector<int64_t> ids;
  int64_t value = 0;
  bool digits = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
      digits = true;
    } else {
      if (digits) ids.push_back(value);
      value = 0;
      digits = false;
    }
  }
  if (digits) ids.push_back(value);
  return ids;
}

std::shared_ptr<const Dictionary> StoreImpl::make_dictionary(int64_t id, std::string data) {
  auto d = std::make_shared<Dictionary>();
  d->id = id;
  d->data = std::move(data);
  d->fingerprint.add(d->data);
  return d;
}

}  // namespace itemfs::store::sqlite
