// Throw-away PKI for the sandbox API, `authproxy dev` and the tests.
#ifndef AUTHPROXY_PKI_H
#define AUTHPROXY_PKI_H
#include <stddef.h>

/// Writes a fresh CA (`ca.pem`), and a server certificate signed by it (`server.pem`,
/// `server-key.pem`, SANs DNS:localhost and IP:127.0.0.1, IP:::1) into `dir`. EC P-256 keys,
/// valid for `days` days. Returns 0, or -1 with a message in `err`.
int ap_pki_make(const char *dir, const char *ca_common_name, int days, char *err, size_t errlen);

#endif
