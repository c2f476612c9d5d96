// The `db:` credential source's client libraries, loaded at run time: libpq (libpq.so.5) and
// MariaDB Connector/C (libmariadb.so.3) are dlopen'ed on the first db: read, so the binary does
// not link them and a deployment that never uses db: does not load them and the ~22 libraries
// they pull in (Kerberos, GSSAPI, LDAP, SASL…). The headers give the types only; each `ap_`
// function calls the library's function of the same name through a pointer resolved by dlsym.
// Call the library's loader first (it is cheap after the first success); an `ap_` function
// called before a successful load is a programming error.
#ifndef AUTHPROXY_DB_SHIMS_H
#define AUTHPROXY_DB_SHIMS_H

#include <stddef.h>
#include <postgresql/libpq-fe.h>
#include <mariadb/mysql.h>

// MARK: loaders

/// dlopen libpq.so.5 once (thread-safe) and resolve every function below: 0, or -1 with the
/// library and dlerror's text in `err`. A failed load is retried by the next call.
int ap_pq_load(char *err, size_t len);
/// The same for libmariadb.so.3.
int ap_mysql_load(char *err, size_t len);

// MARK: libpq

void ap_PQclear(PGresult *res);
PostgresPollingStatusType ap_PQconnectPoll(PGconn *conn);
PGconn *ap_PQconnectStartParams(const char *const *keywords, const char *const *values, int expand_dbname);
int ap_PQconsumeInput(PGconn *conn);
char *ap_PQerrorMessage(const PGconn *conn);
void ap_PQfinish(PGconn *conn);
int ap_PQflush(PGconn *conn);
Oid ap_PQftype(const PGresult *res, int field_num);
PGresult *ap_PQgetResult(PGconn *conn);
int ap_PQgetisnull(const PGresult *res, int tup_num, int field_num);
int ap_PQgetlength(const PGresult *res, int tup_num, int field_num);
char *ap_PQgetvalue(const PGresult *res, int tup_num, int field_num);
int ap_PQisBusy(PGconn *conn);
int ap_PQntuples(const PGresult *res);
char *ap_PQresultErrorMessage(const PGresult *res);
ExecStatusType ap_PQresultStatus(const PGresult *res);
int ap_PQsendQueryParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                         const char *const *paramValues, const int *paramLengths, const int *paramFormats,
                         int resultFormat);
int ap_PQsetnonblocking(PGconn *conn, int arg);
int ap_PQsocket(const PGconn *conn);
ConnStatusType ap_PQstatus(const PGconn *conn);

// MARK: MariaDB Connector/C

void ap_mysql_close(MYSQL *mysql);
unsigned int ap_mysql_errno(MYSQL *mysql);
const char *ap_mysql_error(MYSQL *mysql);
MYSQL *ap_mysql_init(MYSQL *mysql);
int ap_mysql_options(MYSQL *mysql, enum mysql_option option, const void *arg);
MYSQL *ap_mysql_real_connect(MYSQL *mysql, const char *host, const char *user, const char *passwd, const char *db,
                             unsigned int port, const char *unix_socket, unsigned long clientflag);
my_bool ap_mysql_stmt_bind_param(MYSQL_STMT *stmt, MYSQL_BIND *bnd);
my_bool ap_mysql_stmt_bind_result(MYSQL_STMT *stmt, MYSQL_BIND *bnd);
my_bool ap_mysql_stmt_close(MYSQL_STMT *stmt);
unsigned int ap_mysql_stmt_errno(MYSQL_STMT *stmt);
const char *ap_mysql_stmt_error(MYSQL_STMT *stmt);
int ap_mysql_stmt_execute(MYSQL_STMT *stmt);
int ap_mysql_stmt_fetch(MYSQL_STMT *stmt);
int ap_mysql_stmt_fetch_column(MYSQL_STMT *stmt, MYSQL_BIND *bind_arg, unsigned int column, unsigned long offset);
MYSQL_STMT *ap_mysql_stmt_init(MYSQL *mysql);
unsigned long long ap_mysql_stmt_num_rows(MYSQL_STMT *stmt);
int ap_mysql_stmt_prepare(MYSQL_STMT *stmt, const char *query, unsigned long length);
int ap_mysql_stmt_store_result(MYSQL_STMT *stmt);

#endif
