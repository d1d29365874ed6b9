#ifndef CONVOY_CPROCESS_H
#define CONVOY_CPROCESS_H
#include <sys/types.h>

/// Asks the kernel to send `sig` to this process when its parent dies (Linux prctl PR_SET_PDEATHSIG).
/// Returns 0 on success, -1 where unsupported.
int convoy_set_parent_death_signal(int sig);

/// Spawns `path` with `argv` (NULL-terminated) in its own process group, stdout and stderr
/// appended to `log_path`, stdin from /dev/null. Returns the pid, or -errno.
pid_t convoy_spawn(const char *path, char *const argv[], const char *log_path);
#endif
