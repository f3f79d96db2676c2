#include "core/hub_download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/hub_http.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/strings.h"

namespace fairdiff {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kMegabyte = 1000 * 1000;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? trim(value) : std::string();
}

std::string megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f MB", static_cast<double>(bytes) / kMegabyte);
  return text;
}

// An ETag header's value without the weak marker and quotes, as huggingface_hub compares them.
std::string normalize_etag(std::string etag) {
  if (starts_with(etag, "W/")) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

int64_t file_size_or(const fs::path& path, int64_t fallback) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? fallback : static_cast<int64_t>(size);
}

// One file of the repository at the pulled commit, as the Hub's metadata lists it.
struct RepoFile {
  std::string path;
  int64_t size = -1;
  std::string etag;  // the LFS sha256, else the git blob id: the blob's name in the cache
  bool lfs = false;
};

// An exclusive lock on <cache>/.locks/models--ORG--NAME/<etag>.lock, the file huggingface_hub locks, so fairdiff and
// diffusers never write one blob at once.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& file) {
    ensure_directory(file.parent_path(), "Hugging Face cache lock folder");
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw InputError("cannot create the lock file " + file.string() + " (is the cache writable?)");
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~BlobLock() { ::close(fd_); }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

// Counts bytes onto a Progress in whole megabytes.
class ByteProgress {
 public:
  ByteProgress(const std::string& label, int64_t total, int64_t done)
      : bytes_(done),
        total_(total),
        progress_(total >= kMegabyte
                      ? std::make_unique<Progress>(label, (total + kMegabyte - 1) / kMegabyte, done / kMegabyte, "MB")
                      : nullptr) {}
  void add(int64_t bytes, const std::string& file) {
    const int64_t before = bytes_ / kMegabyte;
    bytes_ += bytes;
    if (progress_ && bytes_ / kMegabyte > before) progress_->advance(bytes_ / kMegabyte - before, file);
  }
  void finish() {
    if (!progress_) return;
    // The total is rounded up to whole megabytes: the last part counts as one when everything arrived.
    if (bytes_ >= total_ && total_ % kMegabyte != 0) progress_->advance(1);
    progress_->finish();
  }

 private:
  int64_t bytes_;
  int64_t total_;
  std::unique_ptr<Progress> progress_;
};

class Puller {
 public:
  Puller(const HubModelId& id, const HubPullOptions& options)
      : id_(id), options_(options), http_(options.token), repo_dir_(options.cache / id.cache_folder_name()) {}

  HubPullResult pull();

 private:
  HttpResponse request(const std::string& url, const std::string& what, bool head);
  [[noreturn]] void throw_http_error(const HttpResponse& response, const std::string& url,
                                     const std::string& file) const;
  std::map<std::string, RepoFile> fetch_listing();
  std::vector<RepoFile> select_files(const std::map<std::string, RepoFile>& listing);
  void complete_metadata(RepoFile& file);
  void download(const RepoFile& file, ByteProgress& progress);
  void check_served_version(const HttpResponse& response, const RepoFile& file, const fs::path& incomplete) const;
  void link(const RepoFile& file) const;
  std::string resolve_url(const std::string& path) const {
    return options_.endpoint + "/" + id_.repo + "/resolve/" + commit_ + "/" + url_quote(path, true);
  }
  fs::path blob_path(const RepoFile& file) const { return repo_dir_ / "blobs" / file.etag; }
  void wait_before_retry(int attempt) const {
    std::this_thread::sleep_for(std::chrono::duration<double>(options_.retry_delay_seconds * attempt));
  }

  HubModelId id_;
  HubPullOptions options_;
  HubHttp http_;
  fs::path repo_dir_;
  std::string commit_;
  HubPullResult result_;
};

// A request for metadata: broken connections and the Hub's 429/5xx are retried; other statuses are returned.
HttpResponse Puller::request(const std::string& url, const std::string& what, bool head) {
  for (int attempt = 1;; ++attempt) {
    std::string problem;
    try {
      HttpResponse response = head ? http_.head(url) : http_.get(url);
      if (response.status != 429 && response.status < 500) return response;
      if (attempt >= options_.max_attempts_per_file) throw_http_error(response, url, "");
      problem = "HTTP " + std::to_string(response.status);
    } catch (const HttpTransferError& e) {
      if (attempt >= options_.max_attempts_per_file) {
        throw Error(ExitCode::failure, "cannot reach " + options_.endpoint + " for " + what + " of " + id_.repo + ": " +
                                           e.what() + " (" + std::to_string(attempt) +
                                           " attempts; HF_ENDPOINT names a mirror, HF_HUB_OFFLINE=1 uses the "
                                           "cache only)");
      }
      problem = e.what();
    }
    std::fprintf(stderr, "pull %s: %s for %s; retrying (attempt %d of %d)\n", id_.str().c_str(), problem.c_str(),
                 what.c_str(), attempt + 1, options_.max_attempts_per_file);
    wait_before_retry(attempt);
  }
}

void Puller::throw_http_error(const HttpResponse& response, const std::string& url, const std::string& file) const {
  const std::string code = response.header("x-error-code");
  const std::string hub_message = response.header("x-error-message");
  const std::string says = hub_message.empty() ? "" : " (the Hub says: " + hub_message + ")";
  const std::string where = " [HTTP " + std::to_string(response.status) + " from " + url + "]";
  if (response.status == 401 || response.status == 403) {
    const bool gated = code == "GatedRepo";
    std::string message = id_.repo + (gated ? " is a gated repository" : " is private or gated, or does not exist");
    if (options_.token.empty()) {
      message += ": no token was sent; set HF_TOKEN to an access token (" + options_.endpoint +
                 "/settings/tokens) of an account that may read it" +
                 (gated ? " and has accepted its terms on " + options_.endpoint + "/" + id_.repo : std::string());
    } else {
      message += ": the token from " + options_.token_source + " was refused or has no access to it" +
                 (gated ? " (accept its terms on " + options_.endpoint + "/" + id_.repo + " with that account)"
                        : std::string());
    }
    throw InputError(message + says + where);
  }
  if (response.status == 404) {
    if (code == "RevisionNotFound") {
      throw InputError(id_.repo + " has no revision '" + id_.revision + "' (a branch, tag or commit hash)" + says +
                       where);
    }
    if (code == "EntryNotFound" || !file.empty()) {
      throw InputError(id_.repo + " at commit " + commit_ + " has no file " + file + ", which its file list names" +
                       says + where);
    }
    throw InputError("no model repository " + id_.repo + " at " + options_.endpoint +
                     " (check ORG/NAME; a private repository is not found without a token that may read it)" + says +
                     where);
  }
  throw Error(ExitCode::failure, id_.repo + ": the Hub answered HTTP " + std::to_string(response.status) +
                                     (file.empty() ? "" : " for " + file) + says + where);
}

std::map<std::string, RepoFile> Puller::fetch_listing() {
  const std::string url =
      options_.endpoint + "/api/models/" + id_.repo + "/revision/" + url_quote(id_.revision, false) + "?blobs=true";
  const HttpResponse response = request(url, "the file list", false);
  if (response.status != 200) throw_http_error(response, url, "");
  const std::string what = "the Hub's file list for " + id_.str() + " (" + url + ")";
  Json info;
  try {
    info = Json::parse(response.body);
  } catch (const Json::exception& e) {
    throw InputError(what + " is not JSON: " + e.what());
  }
  if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string() ||
      !is_commit_hash(info["sha"].get<std::string>())) {
    throw InputError(what + " has no commit hash \"sha\" (is HF_ENDPOINT a Hugging Face Hub or a mirror of one?)");
  }
  commit_ = info["sha"].get<std::string>();
  if (!info.contains("siblings") || !info["siblings"].is_array()) throw InputError(what + " has no \"siblings\" list");
  std::map<std::string, RepoFile> listing;
  for (const Json& sibling : info["siblings"]) {
    if (!sibling.is_object() || !sibling.contains("rfilename") || !sibling["rfilename"].is_string()) {
      throw InputError(what + " lists a file without \"rfilename\": " + sibling.dump());
    }
    RepoFile file;
    file.path = sibling["rfilename"].get<std::string>();
    const std::string where = what + ", file " + file.path;
    if (sibling.contains("size") && !sibling["size"].is_null()) file.size = json_value<int64_t>(sibling["size"], where);
    if (sibling.contains("blobId") && sibling["blobId"].is_string()) file.etag = sibling["blobId"].get<std::string>();
    if (sibling.contains("lfs") && sibling["lfs"].is_object()) {
      const Json& lfs = sibling["lfs"];
      file.lfs = true;
      file.etag = lfs.contains("sha256") ? json_value<std::string>(lfs["sha256"], where + " lfs.sha256") : "";
      if (lfs.contains("size")) file.size = json_value<int64_t>(lfs["size"], where + " lfs.size");
      if (file.etag.size() != 64 || file.etag.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw InputError(where + " has no valid lfs.sha256 (64 hex digits): " + lfs.dump());
      }
    }
    listing[file.path] = file;
  }
  return listing;
}

std::vector<RepoFile> Puller::select_files(const std::map<std::string, RepoFile>& listing) {
  const std::string at = id_.repo + " at commit " + commit_;
  if (!listing.count("model_index.json")) {
    throw InputError(at +
                     " has no model_index.json: it is not a model in the diffusers layout, which is what "
                     "`fairdiff model pull` fetches (a single-file .safetensors checkpoint can be downloaded by "
                     "hand and given as --model FILE)");
  }
  const DiffusersModelFiles& wanted = diffusers_model_files();
  std::vector<RepoFile> files;
  for (const std::string& path : wanted.required) {
    if (!listing.count(path)) {
      throw InputError(at + " has no " + path +
                       ", which fairdiff loads (a Stable Diffusion 1.x/2.x model in the diffusers layout: "
                       "model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)");
    }
    files.push_back(listing.at(path));
  }
  for (const std::string& path : wanted.optional) {
    if (listing.count(path)) files.push_back(listing.at(path));
  }
  for (const std::string& base : wanted.weights) {
    const std::string plain = base + ".safetensors";
    const std::string fp16 = base + ".fp16.safetensors";
    const std::string variant = options_.variant.empty() ? "" : base + "." + options_.variant + ".safetensors";
    if (!variant.empty() && listing.count(variant)) {
      files.push_back(listing.at(variant));
    } else if (listing.count(plain)) {
      if (!variant.empty()) result_.notes.push_back(variant + " is not published; pulled " + plain);
      files.push_back(listing.at(plain));
    } else if (listing.count(fp16)) {
      result_.notes.push_back(plain + " is not published; pulled its fp16 variant " + fp16);
      files.push_back(listing.at(fp16));
    } else {
      std::vector<std::string> others;
      const std::string folder = base.substr(0, base.find('/') + 1);
      for (const auto& [path, file] : listing) {
        if (starts_with(path, folder) && (ends_with(path, ".bin") || ends_with(path, ".ckpt") ||
                                          ends_with(path, ".pt") || ends_with(path, ".safetensors"))) {
          others.push_back(path);
        }
      }
      throw InputError(at + " has no " + plain + " (nor " + fp16 + ")" +
                       (others.empty() ? std::string()
                                       : "; it has " + join(others, ", ") +
                                             ", which fairdiff does not read (only .safetensors, never pickled "
                                             ".bin/.ckpt weights)"));
    }
  }
  return files;
}

// A file the listing gives without a blob id or size (an older mirror): the Hub's headers say them.
void Puller::complete_metadata(RepoFile& file) {
  if (!file.etag.empty() && file.size >= 0) return;
  const std::string url = resolve_url(file.path);
  const HttpResponse response = request(url, file.path, true);
  if (response.status >= 400) throw_http_error(response, url, file.path);
  const std::string etag =
      normalize_etag(response.first_header("x-linked-etag").empty() ? response.first_header("etag")
                                                                    : response.first_header("x-linked-etag"));
  std::string size = response.first_header("x-linked-size");
  if (size.empty() && response.first_status < 300) size = response.first_header("content-length");
  long long parsed = -1;
  if (etag.empty() || etag.find('/') != std::string::npos || !parse_int64(size, parsed) || parsed < 0) {
    throw InputError(id_.repo + ": the Hub gives no ETag and size for " + file.path + " [" + url + "]");
  }
  if (file.etag.empty()) file.etag = etag;
  if (file.size < 0) file.size = parsed;
}

// The Hub's own answer (before any redirect to a CDN) names the commit and the file version it serves.
void Puller::check_served_version(const HttpResponse& response, const RepoFile& file,
                                  const fs::path& incomplete) const {
  const std::string commit = response.first_header("x-repo-commit");
  std::string etag = response.first_header("x-linked-etag");
  if (etag.empty() && response.first_status < 300) etag = response.first_header("etag");
  etag = normalize_etag(etag);
  std::string problem;
  if (!commit.empty() && commit != commit_) problem = "commit " + commit + " instead of " + commit_;
  if (!etag.empty() && etag != file.etag) problem = "version " + etag + " instead of " + file.etag;
  if (problem.empty()) return;
  std::error_code ec;
  fs::remove(incomplete, ec);
  throw Error(ExitCode::failure, id_.repo + ": the Hub served " + file.path + " at " + problem +
                                     ", which its file list named; the download was deleted. Pull again (if the "
                                     "repository changed meanwhile, the new commit is taken)");
}

void Puller::download(const RepoFile& file, ByteProgress& progress) {
  const fs::path blob = blob_path(file);
  fs::path incomplete = blob;
  incomplete += ".incomplete";
  BlobLock lock(options_.cache / ".locks" / id_.cache_folder_name() / (file.etag + ".lock"));
  if (file_size_or(blob, -1) == file.size) return;  // another process finished it while this one waited
  std::error_code ec;
  fs::remove(blob, ec);  // a blob of the wrong size is damaged
  const std::string url = resolve_url(file.path);
  const std::function<void(int64_t)> on_bytes = [&](int64_t n) {
    progress.add(n, file.path);
    result_.bytes_downloaded += n;
  };
  for (int failures = 0;;) {
    int64_t have = file_size_or(incomplete, 0);
    if (have > file.size) {
      fs::remove(incomplete, ec);  // longer than the file: not a prefix of it
      have = 0;
    }
    if (have == file.size && have > 0) break;  // all there (an earlier run stopped before checking it)
    const int fd = ::open(incomplete.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw InputError("cannot write " + incomplete.string() + " (is the Hugging Face cache writable?)");
    HttpResponse response;
    std::string problem;
    try {
      response = http_.download(url, fd, have, on_bytes);
    } catch (const HttpTransferError& e) {
      problem = e.what();
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    const int64_t now = file_size_or(incomplete, 0);
    if (problem.empty()) {
      if (response.status == 200 || response.status == 206) {
        check_served_version(response, file, incomplete);
        if (now == file.size) break;
        if (now > file.size) {
          fs::remove(incomplete, ec);
          throw Error(ExitCode::failure, id_.repo + ": the Hub sent " + std::to_string(now) + " bytes of " + file.path +
                                             ", whose size is " + std::to_string(file.size) +
                                             "; the download was deleted");
        }
        problem = "the answer ended at byte " + std::to_string(now) + " of " + std::to_string(file.size);
      } else if (response.status == 416) {
        fs::remove(incomplete, ec);  // the server will not continue it: start again
        problem = "the server refused to resume from byte " + std::to_string(have);
      } else if (response.status == 408 || response.status == 429 || response.status >= 500) {
        problem = "HTTP " + std::to_string(response.status);
      } else if (response.first_status >= 300 && response.first_status < 400) {
        // The Hub sent it on (to a CDN), which refused: not a question of the repository or the token.
        throw Error(ExitCode::failure, id_.repo + ": downloading " + file.path + ", the server it is stored on (" +
                                           response.url + ") answered HTTP " + std::to_string(response.status) +
                                           "; the " + std::to_string(now) + " bytes received are kept in " +
                                           incomplete.string() + " and the next `fairdiff model pull` resumes there");
      } else {
        throw_http_error(response, url, file.path);
      }
    }
    if (now > have) failures = 0;  // progress was made: only failures in a row count
    if (++failures >= options_.max_attempts_per_file) {
      throw Error(ExitCode::failure, id_.repo + ": downloading " + file.path + " failed " + std::to_string(failures) +
                                         " times in a row (" + problem + "); the " + std::to_string(now) +
                                         " bytes received are kept in " + incomplete.string() +
                                         " and the next `fairdiff model pull` resumes from there");
    }
    std::fprintf(stderr, "pull %s: %s: %s; resuming from byte %lld\n", id_.str().c_str(), file.path.c_str(),
                 problem.c_str(), static_cast<long long>(file_size_or(incomplete, 0)));
    wait_before_retry(failures);
  }
  if (file.lfs) {
    const std::string sha256 = sha256_file(incomplete);
    if (sha256 != file.etag) {
      fs::remove(incomplete, ec);
      throw Error(ExitCode::failure, id_.repo + ": " + file.path + " as downloaded has SHA-256 " + sha256 +
                                         ", but the Hub's LFS metadata says " + file.etag +
                                         "; the download was deleted and nothing was kept. Pull again; if it "
                                         "persists, the server (HF_ENDPOINT) serves other content than it lists");
    }
  }
  fs::rename(incomplete, blob, ec);
  if (ec) throw InputError("cannot move " + incomplete.string() + " to " + blob.string() + ": " + ec.message());
  ++result_.files_downloaded;
}

// snapshots/<commit>/<path> -> a relative symlink to blobs/<etag>, made beside it and renamed into place.
void Puller::link(const RepoFile& file) const {
  const fs::path pointer = result_.snapshot / file.path;
  const fs::path target = blob_path(file).lexically_relative(pointer.parent_path());
  ensure_directory(pointer.parent_path(), "Hugging Face cache snapshot folder");
  fs::path temporary = pointer;
  temporary += ".tmp" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(temporary, ec);
  fs::create_symlink(target, temporary, ec);
  if (!ec) fs::rename(temporary, pointer, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw InputError("cannot link " + pointer.string() + " to " + target.string() + " in the Hugging Face cache");
  }
}

HubPullResult Puller::pull() {
  const std::vector<RepoFile> listed = select_files(fetch_listing());
  result_.commit = commit_;
  result_.snapshot = repo_dir_ / "snapshots" / commit_;
  std::vector<RepoFile> files;
  std::vector<RepoFile> to_download;
  int64_t total = 0, done = 0;
  for (RepoFile file : listed) {
    result_.files.push_back(file.path);
    complete_metadata(file);
    if (file_size_or(result_.snapshot / file.path, -1) == file.size) continue;  // already in the snapshot
    files.push_back(file);
    if (file_size_or(blob_path(file), -1) == file.size) continue;  // the blob is cached: only the link is missing
    fs::path incomplete = blob_path(file);
    incomplete += ".incomplete";
    const int64_t have = file_size_or(incomplete, 0);
    to_download.push_back(file);
    total += file.size;
    done += have <= file.size ? have : 0;
  }
  if (!to_download.empty()) {
    std::fprintf(stderr, "pull %s: %zu of %zu files to download (%s) into %s\n", id_.str().c_str(), to_download.size(),
                 listed.size(), megabytes(total - done).c_str(), repo_dir_.string().c_str());
    ensure_directory(repo_dir_ / "blobs", "Hugging Face cache folder");
  }
  ByteProgress progress("pull " + id_.repo, total, done);
  for (const RepoFile& file : to_download) download(file, progress);
  progress.finish();
  for (const RepoFile& file : files) link(file);
  if (id_.revision != commit_) {
    const fs::path ref = repo_dir_ / "refs" / id_.revision;
    ensure_directory(ref.parent_path(), "Hugging Face cache refs folder");
    write_file_atomic(ref, commit_);
  }
  return result_;
}

}  // namespace

HubPullOptions hub_pull_options_from_environment() {
  HubPullOptions options;
  options.endpoint = env("HF_ENDPOINT");
  if (options.endpoint.empty()) options.endpoint = "https://huggingface.co";
  while (ends_with(options.endpoint, "/")) options.endpoint.pop_back();
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    options.token = env(name);
    if (!options.token.empty()) {
      options.token_source = name;
      break;
    }
  }
  if (options.token.empty()) {
    // The file `huggingface-cli login` writes.
    const std::string path = env("HF_TOKEN_PATH");
    const fs::path file = path.empty() ? hf_home_dir() / "token" : fs::path(path);
    std::error_code ec;
    if (fs::is_regular_file(file, ec)) {
      options.token = trim(read_file(file));
      if (!options.token.empty()) options.token_source = file.string();
    }
  }
  options.cache = hub_cache_dir();
  options.offline = hub_offline();
  return options;
}

HubPullResult pull_hub_model(const HubModelId& id, const HubPullOptions& options) {
  if (options.offline) {
    const HubSnapshot snapshot = find_hub_snapshot(id, options.cache);
    std::vector<std::string> missing;
    if (!snapshot.dir.empty()) missing = missing_model_files(snapshot.dir, options.variant);
    if (snapshot.dir.empty() || !missing.empty()) {
      throw UnsupportedError("HF_HUB_OFFLINE is set, so " + id.str() +
                             " cannot be downloaded, and the Hugging Face "
                             "cache does not hold it complete (" +
                             (snapshot.dir.empty() ? "looked for " + snapshot.looked_for
                                                   : snapshot.dir.string() + " lacks " + join(missing, ", ")) +
                             "); unset HF_HUB_OFFLINE to download it");
    }
    HubPullResult result;
    result.commit = snapshot.commit;
    result.snapshot = snapshot.dir;
    result.offline = true;
    return result;
  }
  return Puller(id, options).pull();
}

}  // namespace fairdiff
