// libpq (Debian's libpq-dev): the PostgreSQL client the `db:` credential source reads with.
#include <postgresql/libpq-fe.h>
