#include "pki.h"
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>

static int ap_add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL) return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? 0 : -1;
}

static X509 *ap_make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int days, int is_ca) {
  X509 *cert = X509_new();
  if (cert == NULL) return NULL;
  X509_set_version(cert, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"authproxy sandbox", -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509 *signer = issuer ? issuer : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(signer));
  int bad = 0;
  if (is_ca) {
    bad |= ap_add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
    bad |= ap_add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    bad |= ap_add_ext(cert, signer, NID_subject_key_identifier, "hash");
  } else {
    bad |= ap_add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
    bad |= ap_add_ext(cert, signer, NID_key_usage, "critical,digitalSignature");
    // Both: the sandbox's tests also use the leaf as the proxy's client certificate (mutual TLS).
    bad |= ap_add_ext(cert, signer, NID_ext_key_usage, "serverAuth,clientAuth");
    bad |= ap_add_ext(cert, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    bad |= ap_add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
  }
  if (bad || X509_sign(cert, issuer_key, EVP_sha256()) <= 0) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

static int ap_write_pem(const char *dir, const char *file, X509 *cert, EVP_PKEY *key) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  int ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  if (key) chmod(path, 0600);
  return ok == 1 ? 0 : -1;
}

int ap_pki_make(const char *dir, const char *ca_common_name, int days, char *err, size_t errlen) {
  EVP_PKEY *ca_key = EVP_EC_gen("P-256");
  EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
  X509 *ca = NULL, *leaf = NULL;
  int rc = -1;
  if (ca_key == NULL || leaf_key == NULL) {
    snprintf(err, errlen, "cannot generate keys");
    goto done;
  }
  ca = ap_make_cert(ca_key, ca_common_name, NULL, ca_key, days, 1);
  leaf = ca ? ap_make_cert(leaf_key, "localhost", ca, ca_key, days, 0) : NULL;
  if (ca == NULL || leaf == NULL) {
    snprintf(err, errlen, "cannot make certificates");
    goto done;
  }
  if (ap_write_pem(dir, "ca.pem", ca, NULL) || ap_write_pem(dir, "server.pem", leaf, NULL) ||
      ap_write_pem(dir, "server-key.pem", NULL, leaf_key)) {
    snprintf(err, errlen, "cannot write certificates into %s", dir);
    goto done;
  }
  rc = 0;
done:
  X509_free(ca);
  X509_free(leaf);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(leaf_key);
  return rc;
}
