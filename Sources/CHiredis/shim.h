#ifndef WARREN_CHIREDIS_SHIM_H
#define WARREN_CHIREDIS_SHIM_H
// Only hiredis' non-variadic entry points are used (redisCommandArgv, redisAppendCommandArgv,
// redisGetReply), so this header only includes it.
#include <hiredis/hiredis.h>
#endif
