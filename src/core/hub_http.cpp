#include "core/hub_http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/strings.h"

namespace fairdiff {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

void initialise_curl() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error(ExitCode::failure, "libcurl failed to start");
  });
}

// "bytes 100-199/1000" -> 100; -1 when it does not read so.
long long content_range_start(const std::string& value) {
  const std::string prefix = "bytes ";
  if (!starts_with(value, prefix)) return -1;
  const size_t dash = value.find('-', prefix.size());
  long long start = 0;
  if (dash == std::string::npos || !parse_int64(value.substr(prefix.size(), dash - prefix.size()), start)) return -1;
  return start;
}

}  // namespace

struct HubHttp::Transfer {
  enum class Kind { memory, head, file };
  Kind kind = Kind::memory;
  int fd = -1;
  int64_t offset = 0;
  const std::function<void(int64_t)>* on_bytes = nullptr;
  HttpResponse response;
  int responses = 0;  // status lines seen (one per response, redirects included)
  bool body_started = false;
  bool to_file = false;
  std::string write_error;

  // libcurl calls this once per header line of every response, redirects included.
  static size_t on_header(char* data, size_t size, size_t count, void* self) {
    auto& t = *static_cast<Transfer*>(self);
    const size_t n = size * count;
    std::string line(data, n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (starts_with(line, "HTTP/")) {
      const std::vector<std::string> parts = split(line, ' ');
      long long status = 0;
      if (parts.size() >= 2) parse_int64(parts[1], status);
      t.response.status = static_cast<long>(status);
      t.response.headers.clear();
      if (++t.responses == 1) t.response.first_status = t.response.status;
      return n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return n;
    const std::string name = to_lower(trim(line.substr(0, colon)));
    const std::string value = trim(line.substr(colon + 1));
    t.response.headers[name] = value;
    if (t.responses == 1) t.response.first_headers[name] = value;
    return n;
  }

  // The body of the last response (libcurl skips the bodies of redirects it follows).
  static size_t on_body(char* data, size_t size, size_t count, void* self) {
    auto& t = *static_cast<Transfer*>(self);
    const size_t n = size * count;
    if (t.kind != Kind::file) {
      t.response.body.append(data, n);
      return n;
    }
    if (!t.body_started) {
      t.body_started = true;
      if (t.response.status == 206) {
        if (content_range_start(t.response.header("content-range")) != t.offset) {
          t.write_error = "asked for bytes from " + std::to_string(t.offset) + " and got Content-Range '" +
                          t.response.header("content-range") + "'";
          return 0;
        }
        t.to_file = ::lseek(t.fd, t.offset, SEEK_SET) == t.offset;
      } else if (t.response.status == 200) {
        // The whole file: what an earlier attempt left is replaced.
        t.to_file = ::ftruncate(t.fd, 0) == 0 && ::lseek(t.fd, 0, SEEK_SET) == 0;
      }
      if ((t.response.status == 200 || t.response.status == 206) && !t.to_file) {
        t.write_error = std::string("cannot write the download: ") + std::strerror(errno);
        return 0;
      }
    }
    if (!t.to_file) {
      if (t.response.body.size() < kMaxErrorBody) t.response.body.append(data, n);
      return n;
    }
    size_t written = 0;
    while (written < n) {
      const ssize_t w = ::write(t.fd, data + written, n - written);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        t.write_error =
            std::string("cannot write the download: ") + std::strerror(w < 0 ? errno : ENOSPC) + " (is the disk full?)";
        return 0;
      }
      written += static_cast<size_t>(w);
    }
    if (t.on_bytes && *t.on_bytes) (*t.on_bytes)(static_cast<int64_t>(n));
    return n;
  }

  static int on_progress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return interrupt_requested() ? 1 : 0;  // non-zero aborts the transfer
  }
};

std::string HttpResponse::header(const std::string& lower_case_name) const {
  const auto it = headers.find(lower_case_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpResponse::first_header(const std::string& lower_case_name) const {
  const auto it = first_headers.find(lower_case_name);
  return it == first_headers.end() ? std::string() : it->second;
}

std::string url_quote(const std::string& text, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == '-' || c == '~' || (keep_slash && c == '/');
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HubHttp::HubHttp(std::string token) : token_(std::move(token)) {
  initialise_curl();
  curl_ = curl_easy_init();
  if (!curl_) throw Error(ExitCode::failure, "libcurl could not create a connection handle");
}

HubHttp::~HubHttp() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HubHttp::get(const std::string& url) {
  Transfer transfer;
  return perform(url, transfer);
}

HttpResponse HubHttp::head(const std::string& url) {
  Transfer transfer;
  transfer.kind = Transfer::Kind::head;
  return perform(url, transfer);
}

HttpResponse HubHttp::download(const std::string& url, int fd, int64_t offset,
                               const std::function<void(int64_t)>& on_bytes) {
  Transfer transfer;
  transfer.kind = Transfer::Kind::file;
  transfer.fd = fd;
  transfer.offset = offset;
  transfer.on_bytes = &on_bytes;
  return perform(url, transfer);
}

HttpResponse HubHttp::perform(const std::string& url, Transfer& transfer) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the open connections, so one pull reuses them
  char error_text[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "fairdiff (libcurl)");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, transfer.kind == Transfer::Kind::head ? 0L : 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  // A connection that stalls (under 1 byte/s for a minute) fails and is resumed, rather than hanging forever.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  if (transfer.kind == Transfer::Kind::head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  const std::string range = std::to_string(transfer.offset) + "-";
  if (transfer.kind == Transfer::Kind::file && transfer.offset > 0)
    curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc == CURLE_ABORTED_BY_CALLBACK) throw InterruptedError();
  if (rc == CURLE_WRITE_ERROR && !transfer.write_error.empty()) {
    throw Error(ExitCode::failure, url + ": " + transfer.write_error);
  }
  if (rc != CURLE_OK) {
    // The error buffer has the details ("Failed to connect to ... port 9 after 1 ms: Couldn't connect to server").
    throw HttpTransferError(error_text[0] ? std::string(error_text) : std::string(curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  transfer.response.status = status;
  char* effective_url = nullptr;
  curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &effective_url);
  transfer.response.url = effective_url ? effective_url : url;
  if (transfer.kind == Transfer::Kind::file && status == 200 && !transfer.body_started && ::ftruncate(transfer.fd, 0)) {
    throw Error(ExitCode::failure, url + ": cannot write the download: " + std::strerror(errno));
  }
  return std::move(transfer.response);
}

}  // namespace fairdiff
