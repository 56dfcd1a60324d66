// Several writers at once, each with its own connection: all succeed (busy retry), nothing
// is lost, the audit chain stays intact.
#include <atomic>
#include <thread>

#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;

TEST(StoreConcurrency, WritersInSeveralThreadsAllSucceed) {
  TempDir dir;
  Id user = 0;
  {
    Store s = Store::open(options_for(dir.path()));
    user = s.create_user("ann", Role::Annotator, "ann-password").id;
  }
  constexpr int kThreads = 6;
  constexpr int kCasesPerThread = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      try {
        // Each thread has its own Store, so its own SQLite connection to the same file.
        StoreOptions o = options_for(dir.path());
        o.busy_timeout_ms = 5;  // short SQLite waits: exercise our own retry loop too
        Store s = Store::open(o);
        for (int i = 0; i < kCasesPerThread; ++i) {
          const std::string name = "t" + std::to_string(th) + "_c" + std::to_string(i);
          const Case c = make_case(s, name);
          std::optional<Id> parent;
          for (int r = 0; r < 3; ++r) {
            NewRevision nr;
            nr.case_id = c.id;
            nr.kind = RevisionKind::Manual;
            nr.author_user_id = user;
            nr.expected_parent_id = parent;
            nr.voxel_count = r;
            AuditEntry a;
            a.user_id = user;
            a.actor = "ann";
            a.action = "save";
            parent = s.save_revision(nr, name + "/" + std::to_string(r), a).id;
          }
          s.write([&](WriteTxn& t) {
            t.set_case_status(c.id, CaseStatus::InProgress, user);
            t.add_editing_seconds(c.id, 1.5);
          });
        }
      } catch (const std::exception& e) {
        ++failures;
        ADD_FAILURE() << "thread " << th << ": " << e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);

  Store s = Store::open(options_for(dir.path()));
  const CaseList all = s.read([](ReadTxn& t) {
    CaseFilter f;
    f.limit = 1000;
    return t.list_cases(f);
  });
  EXPECT_EQ(all.total, kThreads * kCasesPerThread);
  for (const Case& c : all.items) {
    EXPECT_EQ(c.status, CaseStatus::InProgress);
    EXPECT_DOUBLE_EQ(c.editing_seconds, 1.5);
    const auto revs = s.read([&](ReadTxn& t) { return t.list_revisions(c.id); });
    ASSERT_EQ(revs.size(), 3u);
    EXPECT_EQ(*c.current_revision_id, revs[2].id);
    EXPECT_EQ(*revs[2].parent_id, revs[1].id);
  }
  const AuditVerifyResult v = s.verify_audit();
  EXPECT_TRUE(v.intact) << v.reason;
  EXPECT_EQ(v.rows_checked, kThreads * kCasesPerThread * 3);
}

TEST(StoreConcurrency, OneStoreSharedByThreadsAndConflictingSaves) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const Id user = s.create_user("ann", Role::Annotator, "ann-password").id;
  const Case c = make_case(s, "shared");
  const Id base = s.save_revision(
                       [&] {
                         NewRevision r;
                         r.case_id = c.id;
                         r.kind = RevisionKind::Ai;
                         r.model_name = "m";
                         return r;
                       }(),
                       "ai")
                      .id;
  // Eight editors all save on top of the same revision: exactly one wins, the others get
  // Conflict, none is lost silently.
  constexpr int kEditors = 8;
  std::atomic<int> won{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kEditors; ++i) {
    threads.emplace_back([&, i] {
      NewRevision r;
      r.case_id = c.id;
      r.kind = RevisionKind::Manual;
      r.author_user_id = user;
      r.expected_parent_id = base;
      try {
        s.save_revision(r, "editor " + std::to_string(i));
        ++won;
      } catch (const Error& e) {
        (e.code() == ErrorCode::Conflict ? conflicts : other)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(conflicts.load(), kEditors - 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.list_revisions(c.id).size(); }), 2u);
}
