#ifndef CONVOY_CPROCESS_H
#define CONVOY_CPROCESS_H
#include <sys/types.h>

/// Asks the kernel to send `sig` to this process when its parent dies (Linux prctl PR_SET_PDEATHSIG).
/// Returns 0 on success, -1 where unsupported.
int convoy_set_parent_death_signal(int sig);

/// Spawns `path` with `argv` (NULL-terminated) in its own process group, stdout and stderr
/// appended to `log_path`, stdin from /dev/null. Returns the pid, or -errno.
pid_t convoy_spawn(const char *path, char *const argv[], const char *log_path);

/// Asks the kernel's EEVDF scheduler (Linux 6.12 and later) for a time slice of `ns` nanoseconds
/// for thread `tid` (0: the calling thread), staying SCHED_OTHER at its nice value: a thread with
/// a shorter slice than the running one preempts it when it wakes. Inherited by threads and
/// processes created afterwards. Returns 0 on success, else -errno.
int convoy_set_sched_slice(pid_t tid, unsigned long long ns);

/// The slice the kernel keeps for thread `tid` (0: the calling thread): 0 where the kernel has no
/// custom slices (it accepts the request and ignores it), or -errno.
long long convoy_sched_slice(pid_t tid);
#endif
