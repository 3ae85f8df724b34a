#ifndef STEWARD_CPAM_SHIM_H
#define STEWARD_CPAM_SHIM_H
#include <security/pam_appl.h>
/* The shadow database, for the account checks PAM's account stage makes (AccountStanding). */
#include <shadow.h>
#endif
