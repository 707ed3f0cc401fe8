#ifndef FLEET_CMALLOC_SHIM_H
#define FLEET_CMALLOC_SHIM_H
// glibc's malloc introspection (`mallinfo2`, `malloc_trim`), which the Glibc module does not export.
#include <malloc.h>
#endif
