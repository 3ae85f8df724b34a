#ifndef STEWARD_CSPAWN_H
#define STEWARD_CSPAWN_H
#include <spawn.h>

/// pipe2(O_CLOEXEC): both ends close on exec, atomically, so concurrent spawns never inherit them.
int steward_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np, which glibc declares only under _GNU_SOURCE.
int steward_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): close every descriptor from `lowest` up in the child,
/// so it inherits none of ours (listening sockets that libraries open without close-on-exec among them).
int steward_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest);

#include <sys/types.h>

/// Become uid/gid for good: supplementary groups, real/effective/saved gid and uid (which clears every capability),
/// then PR_SET_NO_NEW_PRIVS. 0 on success; -1 to -4 say which step failed (errno holds why).
int steward_become(uid_t uid, gid_t gid);

/// PR_GET_NO_NEW_PRIVS for the calling thread: 1 when set.
int steward_no_new_privs(void);

#endif
