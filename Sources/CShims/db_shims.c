// Run-time loading of libpq and MariaDB Connector/C for the `db:` credential source (see
// include/db_shims.h). The tables are X-macros so the list of functions is written once; the
// pointer types come from the headers' own prototypes (__typeof__ does not reference the symbol,
// so nothing here links either library).
#include "db_shims.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define AP_PQ_FUNCTIONS(X)                                                                                             \
  X(PQclear) X(PQconnectPoll) X(PQconnectStartParams) X(PQconsumeInput) X(PQerrorMessage) X(PQfinish) X(PQflush)      \
  X(PQftype) X(PQgetResult) X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQisBusy) X(PQntuples)                      \
  X(PQresultErrorMessage) X(PQresultStatus) X(PQsendQueryParams) X(PQsetnonblocking) X(PQsocket) X(PQstatus)

#define AP_MYSQL_FUNCTIONS(X)                                                                                          \
  X(mysql_close) X(mysql_errno) X(mysql_error) X(mysql_init) X(mysql_options) X(mysql_real_connect)                    \
  X(mysql_stmt_bind_param) X(mysql_stmt_bind_result) X(mysql_stmt_close) X(mysql_stmt_errno) X(mysql_stmt_error)       \
  X(mysql_stmt_execute) X(mysql_stmt_fetch) X(mysql_stmt_fetch_column) X(mysql_stmt_init) X(mysql_stmt_num_rows)       \
  X(mysql_stmt_prepare) X(mysql_stmt_store_result)

#define AP_FIELD(name) __typeof__(&name) name;
static struct { AP_PQ_FUNCTIONS(AP_FIELD) } pq;
static struct { AP_MYSQL_FUNCTIONS(AP_FIELD) } my;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int pq_loaded, my_loaded;

// Opens `soname` and resolves `count` names into `table` (an array of function pointers in the
// order of `names`), all or nothing: on failure the library is closed and `err` says why.
static int load(const char *what, const char *soname, const char *const *names, size_t count, void *table, char *err,
                size_t len) {
  void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char *why = dlerror();
    snprintf(err, len, "cannot load %s (%s): %s", what, soname, why ? why : "unknown error");
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    dlerror();
    void *symbol = dlsym(handle, names[i]);
    if (symbol == NULL) {
      const char *why = dlerror();
      snprintf(err, len, "%s (%s) has no %s: %s", what, soname, names[i], why ? why : "null symbol");
      dlclose(handle);
      return -1;
    }
    // POSIX guarantees a data pointer from dlsym converts to a function pointer; memcpy avoids
    // the ISO C cast warning. Every field of the table is a function pointer of the same size.
    memcpy((char *)table + i * sizeof(void (*)(void)), &symbol, sizeof symbol);
  }
  return 0;
}

#define AP_NAME(name) #name,

int ap_pq_load(char *err, size_t len) {
  static const char *const names[] = {AP_PQ_FUNCTIONS(AP_NAME)};
  _Static_assert(sizeof pq == sizeof names / sizeof names[0] * sizeof(void (*)(void)), "libpq table layout");
  pthread_mutex_lock(&load_lock);
  int rc = 0;
  if (!pq_loaded) {
    rc = load("libpq", "libpq.so.5", names, sizeof names / sizeof names[0], &pq, err, len);
    pq_loaded = rc == 0;
  }
  pthread_mutex_unlock(&load_lock);
  return rc;
}

int ap_mysql_load(char *err, size_t len) {
  static const char *const names[] = {AP_MYSQL_FUNCTIONS(AP_NAME)};
  _Static_assert(sizeof my == sizeof names / sizeof names[0] * sizeof(void (*)(void)), "Connector/C table layout");
  pthread_mutex_lock(&load_lock);
  int rc = 0;
  if (!my_loaded) {
    rc = load("MariaDB Connector/C", "libmariadb.so.3", names, sizeof names / sizeof names[0], &my, err, len);
    my_loaded = rc == 0;
  }
  pthread_mutex_unlock(&load_lock);
  return rc;
}

// MARK: libpq

void ap_PQclear(PGresult *res) { pq.PQclear(res); }
PostgresPollingStatusType ap_PQconnectPoll(PGconn *conn) { return pq.PQconnectPoll(conn); }
PGconn *ap_PQconnectStartParams(const char *const *keywords, const char *const *values, int expand_dbname) {
  return pq.PQconnectStartParams(keywords, values, expand_dbname);
}
int ap_PQconsumeInput(PGconn *conn) { return pq.PQconsumeInput(conn); }
char *ap_PQerrorMessage(const PGconn *conn) { return pq.PQerrorMessage(conn); }
void ap_PQfinish(PGconn *conn) { pq.PQfinish(conn); }
int ap_PQflush(PGconn *conn) { return pq.PQflush(conn); }
Oid ap_PQftype(const PGresult *res, int field_num) { return pq.PQftype(res, field_num); }
PGresult *ap_PQgetResult(PGconn *conn) { return pq.PQgetResult(conn); }
int ap_PQgetisnull(const PGresult *res, int tup_num, int field_num) { return pq.PQgetisnull(res, tup_num, field_num); }
int ap_PQgetlength(const PGresult *res, int tup_num, int field_num) { return pq.PQgetlength(res, tup_num, field_num); }
char *ap_PQgetvalue(const PGresult *res, int tup_num, int field_num) { return pq.PQgetvalue(res, tup_num, field_num); }
int ap_PQisBusy(PGconn *conn) { return pq.PQisBusy(conn); }
int ap_PQntuples(const PGresult *res) { return pq.PQntuples(res); }
char *ap_PQresultErrorMessage(const PGresult *res) { return pq.PQresultErrorMessage(res); }
ExecStatusType ap_PQresultStatus(const PGresult *res) { return pq.PQresultStatus(res); }
int ap_PQsendQueryParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                         const char *const *paramValues, const int *paramLengths, const int *paramFormats,
                         int resultFormat) {
  return pq.PQsendQueryParams(conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats,
                              resultFormat);
}
int ap_PQsetnonblocking(PGconn *conn, int arg) { return pq.PQsetnonblocking(conn, arg); }
int ap_PQsocket(const PGconn *conn) { return pq.PQsocket(conn); }
ConnStatusType ap_PQstatus(const PGconn *conn) { return pq.PQstatus(conn); }

// MARK: MariaDB Connector/C

void ap_mysql_close(MYSQL *mysql) { my.mysql_close(mysql); }
unsigned int ap_mysql_errno(MYSQL *mysql) { return my.mysql_errno(mysql); }
const char *ap_mysql_error(MYSQL *mysql) { return my.mysql_error(mysql); }
MYSQL *ap_mysql_init(MYSQL *mysql) { return my.mysql_init(mysql); }
int ap_mysql_options(MYSQL *mysql, enum mysql_option option, const void *arg) {
  return my.mysql_options(mysql, option, arg);
}
MYSQL *ap_mysql_real_connect(MYSQL *mysql, const char *host, const char *user, const char *passwd, const char *db,
                             unsigned int port, const char *unix_socket, unsigned long clientflag) {
  return my.mysql_real_connect(mysql, host, user, passwd, db, port, unix_socket, clientflag);
}
my_bool ap_mysql_stmt_bind_param(MYSQL_STMT *stmt, MYSQL_BIND *bnd) { return my.mysql_stmt_bind_param(stmt, bnd); }
my_bool ap_mysql_stmt_bind_result(MYSQL_STMT *stmt, MYSQL_BIND *bnd) { return my.mysql_stmt_bind_result(stmt, bnd); }
my_bool ap_mysql_stmt_close(MYSQL_STMT *stmt) { return my.mysql_stmt_close(stmt); }
unsigned int ap_mysql_stmt_errno(MYSQL_STMT *stmt) { return my.mysql_stmt_errno(stmt); }
const char *ap_mysql_stmt_error(MYSQL_STMT *stmt) { return my.mysql_stmt_error(stmt); }
int ap_mysql_stmt_execute(MYSQL_STMT *stmt) { return my.mysql_stmt_execute(stmt); }
int ap_mysql_stmt_fetch(MYSQL_STMT *stmt) { return my.mysql_stmt_fetch(stmt); }
int ap_mysql_stmt_fetch_column(MYSQL_STMT *stmt, MYSQL_BIND *bind_arg, unsigned int column, unsigned long offset) {
  return my.mysql_stmt_fetch_column(stmt, bind_arg, column, offset);
}
MYSQL_STMT *ap_mysql_stmt_init(MYSQL *mysql) { return my.mysql_stmt_init(mysql); }
unsigned long long ap_mysql_stmt_num_rows(MYSQL_STMT *stmt) { return my.mysql_stmt_num_rows(stmt); }
int ap_mysql_stmt_prepare(MYSQL_STMT *stmt, const char *query, unsigned long length) {
  return my.mysql_stmt_prepare(stmt, query, length);
}
int ap_mysql_stmt_store_result(MYSQL_STMT *stmt) { return my.mysql_stmt_store_result(stmt); }
