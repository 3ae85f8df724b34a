#ifndef STEWARD_CSPAWN_H
#define STEWARD_CSPAWN_H
#include <spawn.h>

/// pipe2(O_CLOEXEC): both ends close on exec, atomically, so concurrent spawns never inherit them.
int steward_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np, which glibc declares only under _GNU_SOURCE.
int steward_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path);

#endif
