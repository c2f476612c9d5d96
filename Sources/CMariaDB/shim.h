// MariaDB Connector/C (Debian's libmariadb-dev): the MySQL/MariaDB client of the `db:` credential source.
#include <mariadb/mysql.h>
