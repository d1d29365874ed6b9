#define _GNU_SOURCE
#include "CProcess.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

extern char **environ;

int convoy_set_parent_death_signal(int sig) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
#else
    (void)sig;
    return -1;
#endif
}

pid_t convoy_spawn(const char *path, char *const argv[], const char *log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    pid_t pid = 0;
    int rc;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&pid, path, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc == 0 ? pid : -rc;
}

#ifdef __linux__
/* struct sched_attr of sched_setattr(2), its first version (48 bytes). */
struct convoy_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};
#endif

int convoy_set_sched_slice(pid_t tid, unsigned long long ns) {
#if defined(__linux__) && defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
    struct convoy_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    /* Keep the thread's policy and nice value; only the slice changes. */
    if (syscall(SYS_sched_getattr, tid, &attr, sizeof attr, 0) != 0) return -errno;
    if (attr.sched_policy != 0 /* SCHED_OTHER */) return -EPERM;
    attr.size = sizeof attr;
    attr.sched_flags = 0;
    attr.sched_runtime = ns;
    return syscall(SYS_sched_setattr, tid, &attr, 0) == 0 ? 0 : -errno;
#else
    (void)tid; (void)ns;
    return -ENOSYS;
#endif
}

long long convoy_sched_slice(pid_t tid) {
#if defined(__linux__) && defined(SYS_sched_getattr)
    struct convoy_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_sched_getattr, tid, &attr, sizeof attr, 0) != 0) return -errno;
    return (long long)attr.sched_runtime;
#else
    (void)tid;
    return -ENOSYS;
#endif
}
