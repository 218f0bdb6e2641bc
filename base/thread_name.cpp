#include "base/thread_name.h"

#include <pthread.h>

#include <cstring>
#include <string>

namespace itemfs::base {

void name_this_thread(const char* name) {
  std::string kept(name, std::min<size_t>(std::strlen(name), 15));
  (void)pthread_setname_np(pthread_self(), kept.c_str());
}

}  // namespace itemfs::base
