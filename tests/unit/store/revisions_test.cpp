// Immutable label revisions: the parent chain, the current pointer, conflicts on a stale
// parent, immutability, and durable files (visible before the row, hashing right).
#include <atomic>
#include <thread>

#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;

namespace {
NewRevision ai_revision(Id case_id) {
  NewRevision r;
  r.case_id = case_id;
  r.kind = RevisionKind::Ai;
  r.model_name = "lgg-flair-3d";
  r.model_version = "1";
  r.voxel_count = 1200;
  r.volume_ml = 3.6;
  return r;
}
NewRevision manual_revision(Id case_id, Id user, std::optional<Id> parent) {
  NewRevision r;
  r.case_id = case_id;
  r.kind = RevisionKind::Manual;
  r.author_user_id = user;
  r.expected_parent_id = parent;
  r.voxel_count = 1300;
  r.volume_ml = 3.9;
  r.note = "added the rim";
  return r;
}
}  // namespace

TEST(StoreRevisions, SaveRevision_KeepsParentRevisionAndMovesCurrent) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const User u = s.create_user("ann", Role::Annotator, "ann-password");
  const Case c = make_case(s, "case_a");
  EXPECT_FALSE(c.current_revision_id);

  const LabelRevision r1 = s.save_revision(ai_revision(c.id), "label-bytes-ai");
  EXPECT_FALSE(r1.parent_id);
  EXPECT_EQ(r1.kind, RevisionKind::Ai);
  EXPECT_EQ(r1.model_name, "lgg-flair-3d");
  EXPECT_EQ(r1.image_id, c.image_id);
  EXPECT_EQ(r1.sha256, sha256_hex("label-bytes-ai"));
  EXPECT_EQ(read_file(r1.path), "label-bytes-ai");

  AuditEntry a;
  a.user_id = u.id;
  a.actor = "ann";
  a.action = "save";
  const LabelRevision r2 = s.save_revision(manual_revision(c.id, u.id, r1.id), "label-bytes-manual", a);
  EXPECT_EQ(*r2.parent_id, r1.id);
  EXPECT_EQ(*r2.author_user_id, u.id);
  EXPECT_EQ(r2.note, "added the rim");
  EXPECT_DOUBLE_EQ(r2.volume_ml, 3.9);
  EXPECT_EQ(*s.read([&](ReadTxn& t) { return t.get_case(c.id); }).current_revision_id, r2.id);

  // The save's audit row names the case and the revision.
  AuditQuery q;
  q.case_id = c.id;
  auto audit = s.read([&](ReadTxn& t) { return t.list_audit(q); });
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].action, "save");
  EXPECT_NE(audit[0].detail_json.find("\"revision_id\":" + std::to_string(r2.id)), std::string::npos);

  // Identical content saved again is a new revision sharing the (immutable) file.
  const LabelRevision r3 = s.save_revision(manual_revision(c.id, u.id, r2.id), "label-bytes-ai");
  EXPECT_EQ(r3.path, r1.path);
  EXPECT_EQ(*r3.parent_id, r2.id);

  const auto all = s.read([&](ReadTxn& t) { return t.list_revisions(c.id); });
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, r1.id);
  EXPECT_EQ(all[2].id, r3.id);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.first_ai_revision(c.id)->id; }), r1.id);

  // Revert = move the pointer; nothing is deleted.
  const Case reverted = s.write([&](WriteTxn& t) { return t.set_current_revision(c.id, r1.id, r3.id); });
  EXPECT_EQ(*reverted.current_revision_id, r1.id);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.list_revisions(c.id).size(); }), 3u);
  EXPECT_STORE_ERROR(s.write([&](WriteTxn& t) { t.set_current_revision(c.id, r2.id, r3.id); }), Conflict);
  // The next save after the revert has the reverted-to revision as parent.
  const LabelRevision r4 = s.save_revision(manual_revision(c.id, u.id, r1.id), "label-bytes-4");
  EXPECT_EQ(*r4.parent_id, r1.id);
}

TEST(StoreRevisions, StaleParentIsConflictAndNothingIsWritten) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const User u = s.create_user("ann", Role::Annotator, "ann-password");
  const Case c = make_case(s, "case_b");
  const LabelRevision r1 = s.save_revision(ai_revision(c.id), "ai");
  const LabelRevision r2 = s.save_revision(manual_revision(c.id, u.id, r1.id), "first editor");
  // A second editor who also started from r1.
  const std::string msg =
      EXPECT_STORE_ERROR(s.save_revision(manual_revision(c.id, u.id, r1.id), "second editor"), Conflict);
  EXPECT_NE(msg.find("current revision is " + std::to_string(r2.id)), std::string::npos) << msg;
  // Saving against "no revision" when there is one is a conflict too.
  EXPECT_STORE_ERROR(s.save_revision(manual_revision(c.id, u.id, std::nullopt), "third"), Conflict);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.list_revisions(c.id).size(); }), 2u);
  EXPECT_EQ(*s.read([&](ReadTxn& t) { return t.get_case(c.id); }).current_revision_id, r2.id);
}

TEST(StoreRevisions, RowsAreImmutable) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const Case c = make_case(s, "case_c");
  const LabelRevision r1 = s.save_revision(ai_revision(c.id), "ai");
  std::string msg;
  EXPECT_EQ(raw_exec_rc(dir.path(), "UPDATE label_revisions SET note = 'x' WHERE id = " + std::to_string(r1.id), &msg),
            SQLITE_CONSTRAINT);
  EXPECT_NE(msg.find("immutable"), std::string::npos) << msg;
  EXPECT_EQ(raw_exec_rc(dir.path(), "DELETE FROM label_revisions", &msg), SQLITE_CONSTRAINT);
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.get_revision(r1.id).note; }), "");
}

TEST(StoreRevisions, InvalidRevisionsAreRefused) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const User u = s.create_user("ann", Role::Annotator, "ann-password");
  const Case c = make_case(s, "case_d");
  NewRevision no_model = ai_revision(c.id);
  no_model.model_name.clear();
  EXPECT_STORE_ERROR(s.save_revision(no_model, "x"), BadArgument);
  NewRevision no_author = manual_revision(c.id, u.id, std::nullopt);
  no_author.author_user_id.reset();
  EXPECT_STORE_ERROR(s.save_revision(no_author, "x"), BadArgument);
  NewRevision negative = manual_revision(c.id, u.id, std::nullopt);
  negative.volume_ml = -1;
  EXPECT_STORE_ERROR(s.save_revision(negative, "x"), BadArgument);
  EXPECT_STORE_ERROR(s.save_revision(manual_revision(c.id, u.id, std::nullopt), ""), InvalidLabel);
  NewRevision wrong_case = manual_revision(777, u.id, std::nullopt);
  EXPECT_STORE_ERROR(s.save_revision(wrong_case, "x"), NotFound);
  // A row can never point at a file that is not there.
  NewRevision no_file = manual_revision(c.id, u.id, std::nullopt);
  no_file.sha256 = sha256_hex("never written");
  EXPECT_STORE_ERROR(s.write([&](WriteTxn& t) { t.add_revision(no_file); }), IoFailure);
  EXPECT_TRUE(s.read([&](ReadTxn& t) { return t.list_revisions(c.id); }).empty());
}

// A reader polling while a writer saves: every revision row it ever sees has its file in place
// with the right hash (the file is durable before the row commits).
TEST(StoreRevisions, FileIsCompleteBeforeTheRowIsVisible) {
  TempDir dir;
  Store writer = Store::open(options_for(dir.path()));
  Store reader = Store::open(options_for(dir.path()));
  const User u = writer.create_user("ann", Role::Annotator, "ann-password");
  const Case c = make_case(writer, "case_e");
  constexpr int kSaves = 40;
  std::atomic<bool> done{false};
  std::atomic<int> checked{0};
  std::atomic<int> bad{0};
  std::thread poll([&] {
    while (!done.load()) {
      for (const LabelRevision& r : reader.read([&](ReadTxn& t) { return t.list_revisions(c.id); })) {
        const std::string bytes = read_file(r.path);
        if (sha256_hex(bytes) != r.sha256 || static_cast<std::int64_t>(bytes.size()) != r.file_bytes) ++bad;
        ++checked;
      }
    }
  });
  std::optional<Id> parent;
  for (int i = 0; i < kSaves; ++i) {
    // Large enough that a write in progress would be observable as a short file.
    std::string bytes(256 * 1024 + i, static_cast<char>('a' + i % 26));
    parent = writer.save_revision(manual_revision(c.id, u.id, parent), bytes).id;
  }
  done = true;
  poll.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(checked.load(), 0);
  const auto all = reader.read([&](ReadTxn& t) { return t.list_revisions(c.id); });
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kSaves));
  for (const auto& r : all) EXPECT_EQ(sha256_hex(read_file(r.path)), r.sha256);
}
