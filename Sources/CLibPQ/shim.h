#ifndef WARREN_CLIBPQ_SHIM_H
#define WARREN_CLIBPQ_SHIM_H
// libpq has no variadic entry points that Warren needs, so this header only includes it,
// and eventfd, which wakes a LISTEN connection's poll (Glibc's module does not export it).
#include <libpq-fe.h>
#include <sys/eventfd.h>
#endif
