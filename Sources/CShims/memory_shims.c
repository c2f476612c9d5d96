#include <malloc.h>

int ap_release_free_memory(void) { return malloc_trim(0); }
