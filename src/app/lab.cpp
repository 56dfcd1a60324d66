#include "tumorlab/app/lab.h"

#include <map>
#include <memory>
#include <mutex>

#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;

struct Lab::Impl {
  fs::path data_dir;
  store::Store store;
  LabOpened opened;
  std::int64_t session_ttl_ms = 0;
  std::mutex mutex;
  std::map<std::int64_t, Geometry> geometries;
  std::map<std::int64_t, std::shared_ptr<std::mutex>> loading;
  Impl(fs::path d, store::Store s) : data_dir(std::move(d)), store(std::move(s)) {}
};

Lab::Lab(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Lab::~Lab() = default;

std::unique_ptr<Lab> Lab::open(const LabOptions& options) {
  if (options.data_dir.empty()) throw Error(ErrorCode::BadArgument, "--data-dir: a folder is required");
  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  if (ec)
    throw Error(ErrorCode::IoFailure, "cannot create data folder " + options.data_dir.string() + ": " + ec.message());
  store::StoreOptions so;
  so.data_dir = fs::absolute(options.data_dir).string();
  so.create_if_missing = true;
  so.recover_jobs = options.server_mode;
  auto impl = std::make_unique<Impl>(fs::absolute(options.data_dir), store::Store::open(so));
  const auto& report = impl->store.open_report();
  impl->opened.created = report.created;
  impl->opened.schema_version = report.schema_version;
  impl->opened.jobs_requeued = report.jobs_requeued;
  impl->opened.jobs_failed = report.jobs_failed;
  if (options.session_ttl_ms < 1000 || options.session_ttl_ms > 30ll * 24 * 3600 * 1000)
    throw Error(ErrorCode::BadArgument, "session lifetime: expected 1 s to 30 days, got " +
                                            std::to_string(options.session_ttl_ms / 1000) + " s");
  impl->session_ttl_ms = options.session_ttl_ms;
  if (options.ensure_admin) {
    auto admin = impl->store.ensure_initial_admin();
    impl->opened.admin_created = admin.created;
    impl->opened.admin_username = admin.username;
    impl->opened.admin_generated_password = admin.generated_password;
  }
  fs::create_directories(impl->data_dir / "tmp", ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot create " + (impl->data_dir / "tmp").string() + ": " + ec.message());
  return std::unique_ptr<Lab>(new Lab(std::move(impl)));
}

std::int64_t Lab::session_ttl_ms() const {
  return impl_->session_ttl_ms;
}

std::unique_ptr<Lab> Lab::open_beside_server(const fs::path& data_dir) {
  LabOptions lo;
  lo.data_dir = data_dir;
  lo.server_mode = false;
  lo.ensure_admin = false;
  return open(lo);
}

const LabOpened& Lab::opened() const {
  return impl_->opened;
}
const fs::path& Lab::data_dir() const {
  return impl_->data_dir;
}
store::Store& Lab::store() {
  return impl_->store;
}
fs::path Lab::scratch_dir() const {
  return impl_->data_dir / "tmp";
}

Geometry Lab::image_geometry(std::int64_t image_id) {
  // One reader per image (the others wait for its result): reading a large image is the slow
  // part, and many clients often save on the same case at once.
  std::shared_ptr<std::mutex> gate;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->geometries.find(image_id);
    if (it != impl_->geometries.end()) return it->second;
    auto& g = impl_->loading[image_id];
    if (!g) g = std::make_shared<std::mutex>();
    gate = g;
  }
  std::lock_guard<std::mutex> one_reader(*gate);
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->geometries.find(image_id);
    if (it != impl_->geometries.end()) return it->second;
  }
  auto image = impl_->store.read([&](store::ReadTxn& t) { return t.get_image(image_id); });
  Volume v = io::read_image(image.path);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->geometries[image_id] = v.geometry();
  return v.geometry();
}

store::AuditEntry audit_entry(const Actor& actor, std::string action, std::optional<std::int64_t> case_id,
                              nlohmann::json detail, std::string outcome) {
  store::AuditEntry e;
  if (actor.user_id > 0) e.user_id = actor.user_id;
  e.actor = actor.username.empty() ? "anonymous" : actor.username;
  e.action = std::move(action);
  e.case_id = case_id;
  e.outcome = std::move(outcome);
  if (!actor.ip.empty() && detail.is_object()) detail["ip"] = actor.ip;
  e.detail_json = detail.dump();
  return e;
}

}  // namespace tumorlab::app
