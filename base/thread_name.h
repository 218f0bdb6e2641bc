// base/thread_name: names the calling thread, as `top -H`, `ps -L` and a
// debugger show it ("itemfs-commit", "itemfs-index", ...).
//
// The contract: at most 15 bytes are kept (the kernel's limit); a failure
// is ignored, since a name is only ever a help to whoever looks.
#pragma once

namespace itemfs::base {

void name_this_thread(const char* name);

}  // namespace itemfs::base
