#include "cshims.h"

// Parenthesised names call the functions, not curl.h's type-checking macros of the same name.
CURLcode ap_curl_easy_setopt_long(CURL *h, CURLoption o, long v) { return (curl_easy_setopt)(h, o, v); }
CURLcode ap_curl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v) { return (curl_easy_setopt)(h, o, v); }
CURLcode ap_curl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return (curl_easy_setopt)(h, o, v); }
CURLcode ap_curl_easy_setopt_data_cb(CURL *h, CURLoption o, ap_curl_data_cb cb) { return (curl_easy_setopt)(h, o, cb); }
CURLcode ap_curl_easy_getinfo_long(CURL *h, CURLINFO i, long *out) { return (curl_easy_getinfo)(h, i, out); }
CURLcode ap_curl_easy_getinfo_ptr(CURL *h, CURLINFO i, void **out) { return (curl_easy_getinfo)(h, i, out); }
CURLMcode ap_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return (curl_multi_setopt)(m, o, v); }
CURLMcode ap_curl_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v) { return (curl_multi_setopt)(m, o, v); }
CURLMcode ap_curl_multi_setopt_socket_cb(CURLM *m, ap_curl_socket_cb cb) {
  return (curl_multi_setopt)(m, CURLMOPT_SOCKETFUNCTION, cb);
}
CURLMcode ap_curl_multi_setopt_timer_cb(CURLM *m, ap_curl_timer_cb cb) {
  return (curl_multi_setopt)(m, CURLMOPT_TIMERFUNCTION, cb);
}

int ap_curl_multi_next_done(CURLM *m, CURL **easy, CURLcode *result) {
  int left = 0;
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(m, &left)) != NULL) {
    if (msg->msg == CURLMSG_DONE) {
      // Read both before curl_multi_remove_handle, which invalidates the message.
      *easy = msg->easy_handle;
      *result = msg->data.result;
      return 1;
    }
  }
  return 0;
}

CURLSH *ap_curl_share_for_thread(void) {
  CURLSH *share = curl_share_init();
  if (share == NULL) return NULL;
  (curl_share_setopt)(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  (curl_share_setopt)(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return share;
}

static CURLcode ap_install_store(CURL *h, void *sslctx, void *store) {
  (void)h;
  // set1: the context takes its own reference, so a connection curl keeps outlives no store.
  SSL_CTX_set1_cert_store((SSL_CTX *)sslctx, (X509_STORE *)store);
  return CURLE_OK;
}

CURLcode ap_curl_easy_verify_with_store(CURL *h, X509_STORE *store) {
  CURLcode code = (curl_easy_setopt)(h, CURLOPT_SSL_CTX_FUNCTION, ap_install_store);
  if (code != CURLE_OK) return code;
  (curl_easy_setopt)(h, CURLOPT_SSL_CTX_DATA, (void *)store);
  // No CA file or folder of curl's own: without them curl parses no bundle (the default one is
  // the system's 150 certificates, 0.8 MiB), and the store above is all the peer is checked with.
  (curl_easy_setopt)(h, CURLOPT_CAINFO, (char *)NULL);
  (curl_easy_setopt)(h, CURLOPT_CAPATH, (char *)NULL);
  return CURLE_OK;
}
