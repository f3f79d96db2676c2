// End-to-end tests of `fairdiff model pull` and `--model ORG/NAME`: a fake Hugging Face Hub on 127.0.0.1 (an
// OS-chosen port, cpp-httplib, in this process) serves the tiny-sd2 fixture in the Hub's URL and header shapes; the
// real binary pulls it into a scratch HF_HUB_CACHE through HF_ENDPOINT.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/image.h"
#include "core/sha256.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

const std::string kToken = "hf_test_token";
const std::string kUnet = "unet/diffusion_pytorch_model.safetensors";
const std::string kVae = "vae/diffusion_pytorch_model.safetensors";
const std::string kTextEncoder = "text_encoder/model.safetensors";

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
std::string quote(const fs::path& p) {
  return "'" + p.string() + "'";
}

struct LoggedRequest {
  std::string method, path, range;
  bool authorized = false;  // carried an Authorization header
};

// One repository at one commit: its files and what the metadata says of them.
struct FakeRepo {
  std::string commit;
  std::map<std::string, std::string> files;      // path -> bytes
  std::map<std::string, std::string> sha256_of;  // path -> the LFS sha256 the metadata lists (default: the real one)
  bool gated = false;
  bool without_blob_ids = false;  // an older mirror: small files listed without blobId and size
  static bool is_lfs(const std::string& path) {
    return path.find(".safetensors") != std::string::npos || path.find(".bin") != std::string::npos;
  }
  std::string listed_sha256(const std::string& path) const {
    auto it = sha256_of.find(path);
    return it != sha256_of.end() ? it->second : sha256_hex(files.at(path));
  }
  // A stand-in for the git blob id (40 hex digits): the cache names small files by it.
  std::string blob_id(const std::string& path) const { return sha256_hex("blob " + files.at(path)).substr(0, 40); }
};

// The Hub's answers, as huggingface_hub expects them: the revision API with ?blobs=true, /resolve/ that serves small
// files with their ETag and redirects LFS files to a CDN (here "localhost" instead of 127.0.0.1, another host, which
// must not see the token), the CDN honouring Range requests.
class FakeHub {
 public:
  FakeHub() {
    server_.set_keep_alive_timeout(1);
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      std::lock_guard<std::mutex> lock(mutex_);
      log_.push_back({req.method, req.path, req.get_header_value("Range"), req.has_header("Authorization")});
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.Get(R"(/api/models/([^/]+/[^/]+)/revision/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) { revision(req, res); });
    server_.Get(R"(/([^/]+/[^/]+)/resolve/([^/]+)/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) { resolve(req, res); });
    server_.Get(R"(/cdn/([0-9a-f]{64}))",
                [this](const httplib::Request& req, httplib::Response& res) { cdn(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void add(const std::string& repo, FakeRepo r) {
    std::lock_guard<std::mutex> lock(mutex_);
    repos_[repo] = std::move(r);
  }
  // The next CDN download of `sha256` from its first byte sends `bytes` bytes and drops the connection; with
  // `then_refuse`, the CDN answers 403 for it afterwards (an expired link) until refuse(sha256, false).
  void drop_after(const std::string& sha256, size_t bytes, bool then_refuse = false) {
    std::lock_guard<std::mutex> lock(mutex_);
    drops_[sha256] = {bytes, then_refuse};
  }
  void refuse(const std::string& sha256, bool refused) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (refused) {
      refused_.insert(sha256);
    } else {
      refused_.erase(sha256);
    }
  }
  std::vector<LoggedRequest> log() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }
  void clear_log() {
    std::lock_guard<std::mutex> lock(mutex_);
    log_.clear();
  }
  std::vector<LoggedRequest> requests_for(const std::string& path_part) const {
    std::vector<LoggedRequest> found;
    for (const auto& r : log()) {
      if (r.path.find(path_part) != std::string::npos) found.push_back(r);
    }
    return found;
  }

 private:
  // Finds the repository and checks the token of a gated one; false when `res` already holds the error.
  const FakeRepo* repo_for(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = repos_.find(req.matches[1].str());
    if (it == repos_.end()) {
      res.status = 404;
      res.set_header("X-Error-Code", "RepoNotFound");
      res.set_content("{\"error\":\"Repository not found\"}", "application/json");
      return nullptr;
    }
    if (it->second.gated && req.get_header_value("Authorization") != "Bearer " + kToken) {
      res.status = 401;
      res.set_header("X-Error-Code", "GatedRepo");
      res.set_header("X-Error-Message", "Access to model " + it->first + " is restricted.");
      res.set_content("{\"error\":\"Access restricted\"}", "application/json");
      return nullptr;
    }
    return &it->second;
  }

  void revision(const httplib::Request& req, httplib::Response& res) {
    const FakeRepo* repo = repo_for(req, res);
    if (!repo) return;
    const std::string revision = req.matches[2].str();
    if (revision != "main" && revision != repo->commit) {
      res.status = 404;
      res.set_header("X-Error-Code", "RevisionNotFound");
      res.set_content("{\"error\":\"Invalid rev id: " + revision + "\"}", "application/json");
      return;
    }
    std::string siblings;
    for (const auto& [path, bytes] : repo->files) {
      std::string entry = "{\"rfilename\":\"" + path + "\"";
      if (!repo->without_blob_ids || FakeRepo::is_lfs(path)) {
        entry += ",\"blobId\":\"" + repo->blob_id(path) + "\",\"size\":" + std::to_string(bytes.size());
      }
      if (repo->is_lfs(path)) {
        entry += ",\"lfs\":{\"sha256\":\"" + repo->listed_sha256(path) + "\",\"size\":" + std::to_string(bytes.size()) +
                 ",\"pointerSize\":134}";
      }
      siblings += (siblings.empty() ? "" : ",") + entry + "}";
    }
    res.set_content(
        "{\"id\":\"" + req.matches[1].str() + "\",\"sha\":\"" + repo->commit + "\",\"siblings\":[" + siblings + "]}",
        "application/json");
  }

  void resolve(const httplib::Request& req, httplib::Response& res) {
    const FakeRepo* repo = repo_for(req, res);
    if (!repo) return;
    const std::string path = req.matches[3].str();
    if (req.matches[2].str() != repo->commit || !repo->files.count(path)) {
      res.status = 404;
      res.set_header("X-Error-Code", "EntryNotFound");
      return;
    }
    res.set_header("X-Repo-Commit", repo->commit);
    if (repo->is_lfs(path)) {
      const std::string sha = repo->listed_sha256(path);
      res.set_header("X-Linked-Etag", "\"" + sha + "\"");
      res.set_header("X-Linked-Size", std::to_string(repo->files.at(path).size()));
      res.set_redirect("http://localhost:" + std::to_string(port_) + "/cdn/" + sha, 302);
      std::lock_guard<std::mutex> lock(mutex_);
      cdn_files_[sha] = repo->files.at(path);
      return;
    }
    res.set_header("ETag", "\"" + repo->blob_id(path) + "\"");
    res.set_content(repo->files.at(path), "application/octet-stream");
  }

  void cdn(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string sha = req.matches[1].str();
    if (!cdn_files_.count(sha) || refused_.count(sha)) {
      res.status = 403;
      return;
    }
    auto bytes = std::make_shared<std::string>(cdn_files_.at(sha));
    const auto drop = drops_.find(sha);
    if (drop != drops_.end() && req.ranges.empty()) {
      const size_t cut = drop->second.first;
      if (drop->second.second) refused_.insert(sha);
      drops_.erase(drop);
      res.set_content_provider(bytes->size(), "application/octet-stream",
                               [bytes, cut](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (offset < cut) sink.write(bytes->data() + offset, cut - offset);
                                 return false;  // the connection breaks here
                               });
      return;
    }
    res.set_content(*bytes, "application/octet-stream");  // cpp-httplib answers a Range with 206 itself
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, FakeRepo> repos_;
  std::map<std::string, std::string> cdn_files_;
  std::map<std::string, std::pair<size_t, bool>> drops_;
  std::set<std::string> refused_;
  std::vector<LoggedRequest> log_;
};

// The tiny-sd2 fixture as a Hub repository, with files fairdiff must not fetch.
FakeRepo tiny_sd2(const std::string& commit) {
  FakeRepo repo;
  repo.commit = commit;
  const fs::path dir = test::fixtures_dir() / "tiny-sd2";
  for (const char* file : {"model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                           "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
                           "unet/config.json", "vae/config.json", "unet/diffusion_pytorch_model.safetensors",
                           "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"}) {
    repo.files[file] = read_bytes(dir / file);
  }
  repo.files["README.md"] = "# tiny-sd2\n";
  repo.files["unet/diffusion_pytorch_model.bin"] = "pickled weights fairdiff never reads";
  repo.files["reference.safetensors"] = "not a component";
  return repo;
}

class HubCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        test::scratch_dir(std::string("hub_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    cache_ = root_ / "cache";
    hub_.add("org/tiny-sd2", tiny_sd2(commit_));
  }

  // fairdiff with the Hub environment pointing at the fake Hub and the scratch cache, and nothing of the user's.
  int run(const std::string& arguments, std::string* log, const std::string& extra_env = "") {
    const std::string command =
        "env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE "
        "-u HF_TOKEN_PATH -u HUGGINGFACE_HUB_CACHE HF_HOME=" +
        quote(root_ / "home") + " HF_HUB_CACHE=" + quote(cache_) + " HF_ENDPOINT=" + hub_.endpoint() + " " + extra_env +
        " " + FAIRDIFF_EXE + " " + arguments;
    return test::run_command(command, log);
  }
  fs::path repo_dir(const std::string& folder = "models--org--tiny-sd2") const { return cache_ / folder; }
  fs::path snapshot() const { return repo_dir() / "snapshots" / commit_; }
  std::string sha_of(const std::string& file) const {
    return sha256_hex(read_bytes(test::fixtures_dir() / "tiny-sd2" / file));
  }

  const std::string commit_ = "3f9d7a1c0b2e4d6f8a0c2e4f6a8b0d2f4a6c8e0a";
  FakeHub hub_;
  fs::path root_, cache_;
};

TEST_F(HubCli, PullFetchesOnlyWhatFairdiffLoadsAndGenerateUsesIt) {
  std::string log;
  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  EXPECT_NE(log.find("pulled org/tiny-sd2 at commit " + commit_ + ": 11 files, 11 downloaded"), std::string::npos)
      << log;
  // The huggingface_hub layout: refs/main, relative symlinks into blobs/ named by sha256 (LFS) or blob id.
  EXPECT_EQ(read_bytes(repo_dir() / "refs" / "main"), commit_);
  EXPECT_EQ(fs::read_symlink(snapshot() / kUnet), fs::path("../../../blobs/" + sha_of(kUnet)));
  EXPECT_EQ(read_bytes(snapshot() / kUnet), read_bytes(test::fixtures_dir() / "tiny-sd2" / kUnet));
  EXPECT_TRUE(fs::is_symlink(snapshot() / "model_index.json"));
  for (const auto& entry : fs::directory_iterator(repo_dir() / "blobs")) {
    EXPECT_EQ(entry.path().extension(), "") << "left behind: " << entry.path();
  }
  for (const char* never : {"README.md", ".bin", "reference.safetensors"}) {
    EXPECT_TRUE(hub_.requests_for(never).empty()) << never;
    EXPECT_FALSE(fs::exists(snapshot() / never)) << never;
  }
  for (const auto& r : hub_.requests_for("/cdn/")) EXPECT_FALSE(r.authorized) << "the CDN saw the token";

  // generate --model ORG/NAME reads the snapshot, offline, and makes what the fixture folder makes.
  hub_.clear_log();
  const std::string args = " --prompt 'A photo of a nurse' --steps 3 --seed 5 --width 32 --height 32 --out ";
  ASSERT_EQ(run("generate --model org/tiny-sd2" + args + quote(root_ / "from_hub"), &log, "HF_HUB_OFFLINE=1"), 0)
      << log;
  ASSERT_EQ(
      run("generate --model " + quote(test::fixtures_dir() / "tiny-sd2") + args + quote(root_ / "from_folder"), &log),
      0)
      << log;
  const fs::path png = fs::path("images") / "a_photo_of_a_nurse" / "0.png";
  ASSERT_TRUE(fs::exists(root_ / "from_hub" / png));
  EXPECT_EQ(read_bytes(root_ / "from_hub" / png), read_bytes(root_ / "from_folder" / png));
  EXPECT_TRUE(hub_.log().empty()) << "generate asked the Hub for " << hub_.log()[0].path;
}

// `model convert` and `model init --tokenizer-from` take a Hub id like every other --model.
TEST_F(HubCli, ModelConvertAndInitTakeHubIds) {
  std::string log;
  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  ASSERT_EQ(run("model convert org/tiny-sd2 --weights-dtype fp32 --out " + quote(root_ / "converted"), &log,
                "HF_HUB_OFFLINE=1"),
            0)
      << log;
  EXPECT_EQ(read_bytes(root_ / "converted" / "unet" / "config.json"), read_bytes(snapshot() / "unet" / "config.json"));
  ASSERT_EQ(run("model init --arch tiny-sd2 --tokenizer-from org/tiny-sd2 --out " + quote(root_ / "random"), &log,
                "HF_HUB_OFFLINE=1"),
            0)
      << log;
  EXPECT_EQ(read_bytes(root_ / "random" / "tokenizer" / "vocab.json"),
            read_bytes(test::fixtures_dir() / "tiny-sd2" / "tokenizer" / "vocab.json"));
  // finetune from a snapshot (relative symlinks into blobs/): the untrained components are real files in the output
  // (they used to be left out: fs::relative followed the links out of the snapshot).
  fs::create_directories(root_ / "instance");
  write_png(root_ / "instance" / "0.png", Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 90)});
  ASSERT_EQ(run("finetune --model org/tiny-sd2 --instance-data " + quote(root_ / "instance") +
                    " --instance-prompt 'a photo of sks nurse' --resolution 32 --max-train-steps 1 --out " +
                    quote(root_ / "tuned"),
                &log, "HF_HUB_OFFLINE=1"),
            0)
      << log;
  for (const char* file : {"vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                           "tokenizer/vocab.json", "scheduler/scheduler_config.json", "model_index.json"}) {
    EXPECT_TRUE(fs::is_regular_file(root_ / "tuned" / file)) << file;
    EXPECT_FALSE(fs::is_symlink(root_ / "tuned" / file)) << file;
  }
  EXPECT_NE(run("model convert org/not-pulled --out " + quote(root_ / "none"), &log, "HF_HUB_OFFLINE=1"), 0);
  EXPECT_NE(log.find("fairdiff model pull org/not-pulled"), std::string::npos) << log;
}

TEST_F(HubCli, SecondPullDownloadsNothing) {
  std::string log;
  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  hub_.clear_log();
  ASSERT_EQ(run("model pull org/tiny-sd2@main", &log), 0) << log;
  EXPECT_NE(log.find("11 files, 0 downloaded"), std::string::npos) << log;
  ASSERT_EQ(hub_.log().size(), 1u) << "only the file list is asked for";
  EXPECT_EQ(hub_.log()[0].path, "/api/models/org/tiny-sd2/revision/main");
  // By commit hash too, and a lost snapshot link is remade from its blob without a download.
  fs::remove(snapshot() / "vae" / "config.json");
  hub_.clear_log();
  ASSERT_EQ(run("model pull org/tiny-sd2 --revision " + commit_, &log), 0) << log;
  EXPECT_NE(log.find("0 downloaded"), std::string::npos) << log;
  EXPECT_EQ(hub_.log().size(), 1u);
  EXPECT_TRUE(fs::exists(snapshot() / "vae" / "config.json"));
}

TEST_F(HubCli, BrokenConnectionIsResumedWithARangeRequest) {
  hub_.drop_after(sha_of(kUnet), 1000000);
  std::string log;
  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  EXPECT_NE(log.find("resuming from byte 1000000"), std::string::npos) << log;
  const auto cdn = hub_.requests_for("/cdn/" + sha_of(kUnet));
  ASSERT_EQ(cdn.size(), 2u);
  EXPECT_EQ(cdn[0].range, "");
  EXPECT_EQ(cdn[1].range, "bytes=1000000-");
  EXPECT_EQ(sha256_hex(read_bytes(snapshot() / kUnet)), sha_of(kUnet));
}

TEST_F(HubCli, FailedPullKeepsOnlyTheIncompleteBlobAndTheNextPullResumesIt) {
  // The connection breaks after 1 MB, then the CDN refuses: the pull fails with the bytes kept for later.
  const std::string sha = sha_of(kVae);
  hub_.drop_after(sha, 1000000, true);
  std::string log;
  EXPECT_EQ(run("model pull org/tiny-sd2", &log), 1) << log;
  EXPECT_NE(log.find("the next `fairdiff model pull` resumes"), std::string::npos) << log;
  const fs::path incomplete = repo_dir() / "blobs" / (sha + ".incomplete");
  ASSERT_TRUE(fs::exists(incomplete)) << log;
  EXPECT_EQ(fs::file_size(incomplete), 1000000u);
  EXPECT_FALSE(fs::exists(snapshot())) << "no partial snapshot";
  EXPECT_FALSE(fs::exists(repo_dir() / "refs" / "main"));
  EXPECT_NE(log.find("vae/diffusion_pytorch_model.safetensors"), std::string::npos) << log;

  hub_.refuse(sha, false);
  hub_.clear_log();
  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  const auto cdn = hub_.requests_for("/cdn/" + sha);
  ASSERT_EQ(cdn.size(), 1u);
  EXPECT_EQ(cdn[0].range, "bytes=1000000-");
  EXPECT_FALSE(fs::exists(incomplete));
  EXPECT_EQ(sha256_hex(read_bytes(snapshot() / kVae)), sha);
}

TEST_F(HubCli, WrongChecksumIsRejectedAndNothingKept) {
  FakeRepo bad = tiny_sd2("9" + commit_.substr(1));
  const std::string wrong = sha256_hex("something else");
  bad.sha256_of[kTextEncoder] = wrong;
  hub_.add("org/bad-sum", bad);
  std::string log;
  EXPECT_EQ(run("model pull org/bad-sum", &log), 1) << log;
  EXPECT_NE(log.find("text_encoder/model.safetensors as downloaded has SHA-256 " + sha_of(kTextEncoder)),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(wrong), std::string::npos) << log;
  const fs::path repo = repo_dir("models--org--bad-sum");
  EXPECT_FALSE(fs::exists(repo / "blobs" / wrong));
  EXPECT_FALSE(fs::exists(repo / "blobs" / (wrong + ".incomplete")));
  EXPECT_FALSE(fs::exists(repo / "snapshots"));
  EXPECT_FALSE(fs::exists(repo / "refs"));
  EXPECT_NE(run("generate --model org/bad-sum --prompt x --out " + quote(root_ / "out"), &log), 0);
}

TEST_F(HubCli, GatedRepositoryNeedsHfToken) {
  FakeRepo gated = tiny_sd2("7" + commit_.substr(1));
  gated.gated = true;
  hub_.add("org/gated", gated);
  std::string log;
  EXPECT_EQ(run("model pull org/gated", &log), 3) << log;
  EXPECT_NE(log.find("org/gated is a gated repository: no token was sent; set HF_TOKEN"), std::string::npos) << log;
  EXPECT_NE(log.find("HTTP 401"), std::string::npos) << log;
  EXPECT_EQ(run("model pull org/gated", &log, "HF_TOKEN=hf_wrong"), 3) << log;
  EXPECT_NE(log.find("the token from HF_TOKEN was refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("hf_wrong"), std::string::npos) << "the token is never printed";
  EXPECT_FALSE(fs::exists(repo_dir("models--org--gated") / "snapshots"));

  hub_.clear_log();
  ASSERT_EQ(run("model pull org/gated", &log, "HF_TOKEN=" + kToken), 0) << log;
  EXPECT_TRUE(fs::exists(repo_dir("models--org--gated") / "snapshots" / gated.commit / kUnet));
  for (const auto& r : hub_.log()) {
    const bool on_hub = r.path.find("/cdn/") == std::string::npos;
    EXPECT_EQ(r.authorized, on_hub) << r.path << ": the token goes to the Hub, never to the CDN";
  }
}

TEST_F(HubCli, MissingRepositoryOrRevisionIsNamed) {
  std::string log;
  EXPECT_EQ(run("model pull org/no-such-model", &log), 3) << log;
  EXPECT_NE(log.find("no model repository org/no-such-model at " + hub_.endpoint()), std::string::npos) << log;
  EXPECT_NE(log.find("HTTP 404"), std::string::npos) << log;
  EXPECT_EQ(run("model pull org/tiny-sd2@v9", &log), 3) << log;
  EXPECT_NE(log.find("org/tiny-sd2 has no revision 'v9'"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(repo_dir()));
}

TEST_F(HubCli, OfflineModeUsesTheCacheOnlyAndNeverAsks) {
  std::string log;
  EXPECT_EQ(run("model pull org/tiny-sd2", &log, "HF_HUB_OFFLINE=1"), 4) << log;
  EXPECT_NE(log.find("HF_HUB_OFFLINE is set, so org/tiny-sd2 cannot be downloaded"), std::string::npos) << log;
  EXPECT_EQ(run("generate --model org/tiny-sd2 --prompt x --out " + quote(root_ / "out"), &log, "HF_HUB_OFFLINE=1"), 3)
      << log;
  EXPECT_NE(log.find((cache_ / "models--org--tiny-sd2" / "refs" / "main").string()), std::string::npos) << log;
  EXPECT_NE(log.find("fairdiff model pull org/tiny-sd2"), std::string::npos) << log;
  EXPECT_TRUE(hub_.log().empty());

  ASSERT_EQ(run("model pull org/tiny-sd2", &log), 0) << log;
  hub_.clear_log();
  ASSERT_EQ(run("model pull org/tiny-sd2", &log, "HF_HUB_OFFLINE=1"), 0) << log;
  EXPECT_NE(log.find("HF_HUB_OFFLINE is set: org/tiny-sd2 is in the cache at commit " + commit_), std::string::npos)
      << log;
  EXPECT_TRUE(hub_.log().empty());
}

TEST_F(HubCli, VariantFp16FetchesTheFp16Weights) {
  FakeRepo repo = tiny_sd2("5" + commit_.substr(1));
  for (const std::string& file : {kUnet, kVae, kTextEncoder}) {
    const std::string fp16 = file.substr(0, file.size() - 12) + ".fp16.safetensors";
    repo.files[fp16] = "fp16 weights of " + file;
  }
  hub_.add("org/with-fp16", repo);
  std::string log;
  ASSERT_EQ(run("model pull org/with-fp16 --variant fp16", &log), 0) << log;
  const fs::path snap = repo_dir("models--org--with-fp16") / "snapshots" / repo.commit;
  EXPECT_EQ(read_bytes(snap / "unet/diffusion_pytorch_model.fp16.safetensors"), "fp16 weights of " + kUnet);
  EXPECT_FALSE(fs::exists(snap / kUnet));
  EXPECT_TRUE(fs::exists(snap / "text_encoder/model.fp16.safetensors"));
  EXPECT_EQ(hub_.requests_for("resolve/" + repo.commit + "/" + kUnet).size(), 0u);
}

TEST_F(HubCli, SmallFilesWithoutBlobIdsAreNamedByTheirETag) {
  FakeRepo repo = tiny_sd2("6" + commit_.substr(1));
  repo.without_blob_ids = true;
  hub_.add("org/old-mirror", repo);
  std::string log;
  ASSERT_EQ(run("model pull org/old-mirror", &log), 0) << log;
  const fs::path snap = repo_dir("models--org--old-mirror") / "snapshots" / repo.commit;
  EXPECT_EQ(fs::read_symlink(snap / "unet" / "config.json"),
            fs::path("../../../blobs/" + repo.blob_id("unet/config.json")));
  EXPECT_EQ(read_bytes(snap / "unet" / "config.json"), repo.files.at("unet/config.json"));
  size_t heads = 0;
  for (const auto& r : hub_.log()) heads += r.method == "HEAD";
  EXPECT_EQ(heads, 8u) << "one HEAD per small file";
}

TEST(HubCliUsage, BadIdsAndRevisionsAreUsageErrors) {
  std::string log;
  const std::string exe = FAIRDIFF_EXE;
  EXPECT_EQ(test::run_command(exe + " model pull ./not/an-id", &log), 2) << log;
  EXPECT_NE(log.find("is not a Hub id ORG/NAME[@REVISION]"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(exe + " model pull org/name@v1 --revision v2", &log), 2) << log;
  EXPECT_EQ(test::run_command(exe + " model pull org/name --variant bf16", &log), 2) << log;
  EXPECT_EQ(test::run_command(exe + " model pull", &log), 2) << log;
}

}  // namespace
}  // namespace fairdiff
