#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include "cspawn.h"

int steward_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int steward_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int steward_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

#include <grp.h>
#include <sys/prctl.h>

int steward_become(uid_t uid, gid_t gid) {
    gid_t groups[1] = {gid};
    if (setgroups(1, groups) != 0) return -1;
    if (setresgid(gid, gid, gid) != 0) return -2;
    if (setresuid(uid, uid, uid) != 0) return -3;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -4;
    return 0;
}

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int steward_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }

/* The web process under privilege separation (started by the root helper with --privsep-fd) becomes the steward
   user here, before main and before any thread exists: credentials and no-new-privileges are per thread on Linux,
   and a thread made earlier (the Swift runtime's, or the main thread that dispatch_main ends) would keep root. */
static void steward_privsep_early(int argc, char **argv, char **envp) {
    (void)envp;
    int wanted = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--privsep-fd") == 0) wanted = 1;
    }
    if (!wanted || getuid() != 0) return;
    struct passwd *entry = getpwnam("steward");
    if (entry == NULL) {
        fprintf(stderr, "steward: the steward system user does not exist; the helper should have made it\n");
        _exit(78);
    }
    int step = steward_become(entry->pw_uid, entry->pw_gid);
    if (step != 0 || setuid(0) == 0) {
        fprintf(stderr, "steward: could not drop privileges to the steward user (step %d)\n", step);
        _exit(78);
    }
}

__attribute__((section(".init_array"), used)) static void (*steward_privsep_init)(int, char **, char **) = steward_privsep_early;
