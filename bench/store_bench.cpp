// Store benchmarks on a real SQLite file in a temp folder (on the disk /tmp lives on):
// durable revision saves (label file fsync + rename + folder fsync + WAL commit), concurrent
// saves from several threads, session lookup, a case-list page, audit chain verification.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include "tumorlab/store/store.h"

namespace fs = std::filesystem;
using namespace tumorlab::store;

namespace {

struct Env {
  fs::path dir;
  std::unique_ptr<Store> store;
  Id user = 0;
  std::vector<Id> cases;
  std::string token;
  Env() {
    std::string tmpl = (fs::temp_directory_path() / "tumorlab-store-bench-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    StoreOptions o;
    o.data_dir = dir.string();
    store = std::make_unique<Store>(Store::open(o));
    user = store->create_user("bench", Role::Annotator, "bench-password").id;
    token = store->write([&](WriteTxn& t) { return t.create_session(user, 3'600'000).token; });
    const StoredFile img = store->put_image_bytes(std::string(1 << 20, 'i'));
    store->write([&](WriteTxn& t) {
      NewImage im;
      im.sha256 = img.sha256;
      im.size = {256, 256, 64};
      im.spacing_mm = {1, 1, 2};
      const Id image = t.add_image(im).id;
      for (int i = 0; i < 1000; ++i) {
        const Case c = t.add_case(NewCase{"case_" + std::to_string(i), image, std::nullopt});
        t.set_case_scores(c.id, (i * 37 % 1000) / 1000.0, double(i * 13 % 1000));
        cases.push_back(c.id);
      }
    });
  }
  ~Env() {
    store.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Env& env() {
  static Env e;
  return e;
}

// Each thread saves a chain of revisions on its own cases; labels of 64 KiB, all different.
void BM_SaveRevisionDurable(benchmark::State& state) {
  Env& e = env();
  static std::mutex m;
  static int next_case = 0;
  Id case_id;
  {
    std::lock_guard<std::mutex> lock(m);
    case_id = e.cases[static_cast<std::size_t>(next_case++ % 1000)];
  }
  std::optional<Id> parent = e.store->read([&](ReadTxn& t) { return t.get_case(case_id).current_revision_id; });
  std::string bytes(64 * 1024, 'l');
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::memcpy(bytes.data(), &n, sizeof n);
    std::memcpy(bytes.data() + 8, &case_id, sizeof case_id);
    ++n;
    NewRevision r;
    r.case_id = case_id;
    r.kind = RevisionKind::Manual;
    r.author_user_id = e.user;
    r.expected_parent_id = parent;
    AuditEntry a;
    a.user_id = e.user;
    a.actor = "bench";
    a.action = "save";
    parent = e.store->save_revision(r, bytes, a).id;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SaveRevisionDurable)->Threads(1)->Threads(4)->Threads(8)->UseRealTime()->MinTime(2.0);

void BM_FindSession(benchmark::State& state) {
  Env& e = env();
  for (auto _ : state) benchmark::DoNotOptimize(e.store->read([&](ReadTxn& t) { return t.find_session(e.token); }));
}
BENCHMARK(BM_FindSession)->Threads(1)->Threads(4)->UseRealTime();

void BM_ListCasesPage(benchmark::State& state) {
  Env& e = env();
  CaseFilter f;
  f.sort = CaseSort::AlRank;
  f.limit = 50;
  f.offset = 200;
  for (auto _ : state) benchmark::DoNotOptimize(e.store->read([&](ReadTxn& t) { return t.list_cases(f); }));
}
BENCHMARK(BM_ListCasesPage)->UseRealTime();

void BM_VerifyAudit(benchmark::State& state) {
  Env& e = env();
  std::int64_t rows = 0;
  for (auto _ : state) rows = e.store->verify_audit().rows_checked;
  state.counters["rows"] = static_cast<double>(rows);
  state.SetItemsProcessed(state.iterations() * rows);
}
BENCHMARK(BM_VerifyAudit)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
