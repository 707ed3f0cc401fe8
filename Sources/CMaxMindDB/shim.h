#ifndef FLEET_CMAXMINDDB_SHIM_H
#define FLEET_CMAXMINDDB_SHIM_H
#include <maxminddb.h>
#endif
