#ifndef WARREN_CLIBPQ_SHIM_H
#define WARREN_CLIBPQ_SHIM_H
// libpq has no variadic entry points that Warren needs, so this header only includes it.
#include <libpq-fe.h>
#endif
