// HTTP for the Hugging Face Hub through libcurl: a JSON request into memory, a HEAD for a file's metadata, and a
// resumable download into an open file. Errors of the transfer itself (no connection, a connection that broke) are
// HttpTransferError, which the caller may retry; HTTP statuses are returned for the caller to explain, since only it
// knows the repository and file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace fairdiff {

struct HttpResponse {
  long status = 0;
  std::string body;  // the body of get(); of a download, the body of an error status (the file's bytes go to disk)
  // Header names in lower case. `first_headers` are those of the first response, the Hub's own (X-Repo-Commit,
  // X-Linked-Etag...), before any redirect to a CDN; `headers` those of the last.
  std::map<std::string, std::string> first_headers;
  std::map<std::string, std::string> headers;
  long first_status = 0;
  std::string url;  // where the last response came from (after redirects)

  std::string header(const std::string& lower_case_name) const;
  std::string first_header(const std::string& lower_case_name) const;
};

class HttpTransferError : public std::runtime_error {
 public:
  explicit HttpTransferError(const std::string& message) : std::runtime_error(message) {}
};

// Percent-encoding as Python's urllib.parse.quote: letters, digits and "_.-~" stay, and '/' when `keep_slash`.
std::string url_quote(const std::string& text, bool keep_slash);

class HubHttp {
 public:
  // `token`: sent as "Authorization: Bearer <token>" when not empty (libcurl does not forward it when a redirect
  // leaves the host, so a CDN never sees it).
  explicit HubHttp(std::string token);
  ~HubHttp();
  HubHttp(const HubHttp&) = delete;
  HubHttp& operator=(const HubHttp&) = delete;

  // GET, following redirects, the body in memory.
  HttpResponse get(const std::string& url);
  // HEAD, not following redirects (the Hub's headers are on its redirect).
  HttpResponse head(const std::string& url);
  // GET into the file descriptor `fd`, which holds `offset` bytes already: a Range request from `offset` when it is
  // above 0. A 206 answer is appended; a 200 answer (a server that ignores ranges) replaces the file's contents.
  // `on_bytes(n)` is called as bytes are written. Ctrl-C (core/interrupt.h) stops the transfer with
  // InterruptedError, keeping what was written.
  HttpResponse download(const std::string& url, int fd, int64_t offset, const std::function<void(int64_t)>& on_bytes);

 private:
  struct Transfer;
  HttpResponse perform(const std::string& url, Transfer& transfer);

  std::string token_;
  void* curl_;  // CURL*
};

}  // namespace fairdiff
