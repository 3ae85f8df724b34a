#ifndef STEWARD_CPAM_SHIM_H
#define STEWARD_CPAM_SHIM_H
#include <security/pam_appl.h>
#endif
