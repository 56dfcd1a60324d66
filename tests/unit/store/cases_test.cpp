// Patients, studies, images stored once, the case workflow, assignment, lists.
#include <cmath>

#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;

TEST(StoreImages, SameBytesAreStoredOnceAndHashRight) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  const std::string bytes = "pretend .nii.gz bytes \x01\x02\x03";
  const StoredFile a = s.put_image_bytes(bytes);
  const StoredFile b = s.put_image_bytes(bytes);
  EXPECT_EQ(a.sha256, sha256_hex(bytes));
  EXPECT_EQ(a.path, (dir / "images" / (a.sha256 + ".nii.gz")).string());
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(read_file(a.path), bytes);
  // From a file, streamed: the same content gives the same hash and file.
  std::ofstream(dir / "src.bin", std::ios::binary) << bytes;
  const StoredFile c = s.put_image_file((dir / "src.bin").string());
  EXPECT_EQ(c.sha256, a.sha256);
  EXPECT_EQ(c.file_bytes, static_cast<std::int64_t>(bytes.size()));
  EXPECT_STORE_ERROR(s.put_image_file((dir / "missing.nii.gz").string()), FileNotFound);
  // No temp files left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "images")) {
    ++files;
    EXPECT_EQ(e.path().filename().string()[0] != '.', true) << e.path();
  }
  EXPECT_EQ(files, 1);

  s.write([&](WriteTxn& t) {
    const Patient p = t.add_patient("PSEUDO-0001");
    EXPECT_EQ(t.add_patient("PSEUDO-0001").id, p.id);
    const Study st = t.add_study(p.id, "study-key-1", "brain MR");
    EXPECT_EQ(t.add_study(p.id, "study-key-1", "other").id, st.id);
    EXPECT_EQ(t.list_studies(p.id).size(), 1u);
    NewImage im;
    im.study_id = st.id;
    im.sha256 = a.sha256;
    im.modality = "MR";
    im.channel_names = {"T1", "FLAIR"};
    im.size = {10, 20, 30};
    im.spacing_mm = {0.5, 0.5, 3.0};
    im.demo = true;
    const Image i1 = t.add_image(im);
    const Image i2 = t.add_image(im);
    EXPECT_EQ(i1.id, i2.id);
    EXPECT_EQ(i1.channel_names, (std::vector<std::string>{"T1", "FLAIR"}));
    EXPECT_EQ(i1.size[2], 30);
    EXPECT_DOUBLE_EQ(i1.spacing_mm[2], 3.0);
    EXPECT_TRUE(i1.demo);
    EXPECT_EQ(i1.path, a.path);
    EXPECT_EQ(i1.file_bytes, static_cast<std::int64_t>(bytes.size()));
    im.sha256 = std::string(64, 'a');  // never stored
    EXPECT_STORE_ERROR(t.add_image(im), IoFailure);
    im.sha256 = "../../etc/passwd";
    EXPECT_STORE_ERROR(t.add_image(im), BadArgument);
  });
}

TEST(StoreCases, WorkflowTransitionsAreEnforcedAndRecorded) {
  TempDir dir;
  TestClock clock;
  Store s = Store::open(options_for(dir.path(), &clock));
  const User ann = s.create_user("ann", Role::Annotator, "ann-password");
  const User rev = s.create_user("rev", Role::Reviewer, "rev-password");
  const Case c = make_case(s, "case_001");
  EXPECT_EQ(c.status, CaseStatus::New);
  EXPECT_STORE_ERROR(make_case(s, "case_001", "other bytes"), Conflict);

  s.write([&](WriteTxn& t) {
    t.set_case_status(c.id, CaseStatus::Presegmented, std::nullopt);
    EXPECT_STORE_ERROR(t.set_case_status(c.id, CaseStatus::Validated, rev.id), Conflict);
    t.set_case_status(c.id, CaseStatus::InProgress, ann.id);
    t.set_case_status(c.id, CaseStatus::Submitted, ann.id);
    EXPECT_STORE_ERROR(t.set_case_status(c.id, CaseStatus::Rejected, rev.id, ""), BadArgument);
    // Optimistic check on the status as the caller saw it.
    EXPECT_STORE_ERROR(t.set_case_status(c.id, CaseStatus::Rejected, rev.id, "why", CaseStatus::InProgress), Conflict);
    const Case r = t.set_case_status(c.id, CaseStatus::Rejected, rev.id, "missed the second lesion");
    EXPECT_EQ(r.status_comment, "missed the second lesion");
    t.set_case_status(c.id, CaseStatus::InProgress, ann.id);
    t.set_case_status(c.id, CaseStatus::Submitted, ann.id);
    t.set_case_status(c.id, CaseStatus::Validated, rev.id, "", CaseStatus::Submitted);
  });
  const auto h = s.read([&](ReadTxn& t) { return t.case_history(c.id); });
  ASSERT_EQ(h.size(), 7u);
  EXPECT_EQ(*h[0].from_status, CaseStatus::New);
  EXPECT_EQ(*h[0].to_status, CaseStatus::Presegmented);
  EXPECT_FALSE(h[0].user_id);
  EXPECT_EQ(*h[3].to_status, CaseStatus::Rejected);
  EXPECT_EQ(h[3].comment, "missed the second lesion");
  EXPECT_EQ(*h[3].user_id, rev.id);
  EXPECT_EQ(*h[6].to_status, CaseStatus::Validated);

  // The full table of allowed transitions.
  const CaseStatus all[] = {CaseStatus::New,       CaseStatus::Presegmented, CaseStatus::InProgress,
                            CaseStatus::Submitted, CaseStatus::Validated,    CaseStatus::Rejected};
  int allowed = 0;
  for (auto a : all)
    for (auto b : all) allowed += is_allowed_transition(a, b);
  EXPECT_EQ(allowed, 9);
  EXPECT_FALSE(is_allowed_transition(CaseStatus::New, CaseStatus::Submitted));
  EXPECT_FALSE(is_allowed_transition(CaseStatus::InProgress, CaseStatus::Validated));
  EXPECT_FALSE(is_allowed_transition(CaseStatus::Validated, CaseStatus::Validated));
}

TEST(StoreCases, AssignmentEditingTimeScoresListAndNext) {
  TempDir dir;
  TestClock clock;
  Store s = Store::open(options_for(dir.path(), &clock));
  const User ann = s.create_user("ann", Role::Annotator, "ann-password");
  const User other = s.create_user("other", Role::Annotator, "other-password");
  std::vector<Case> cases;
  for (int i = 0; i < 6; ++i) {
    clock.now += 1000;
    cases.push_back(make_case(s, "case_" + std::to_string(i)));
  }
  s.write([&](WriteTxn& t) {
    t.set_case_scores(cases[0].id, 0.10, 5.0);
    t.set_case_scores(cases[1].id, 0.90, 1.0);
    t.set_case_scores(cases[2].id, 0.50, std::nullopt);
    t.set_case_scores(cases[3].id, std::nullopt, 2.0);
    t.assign_case(cases[4].id, other.id, std::nullopt);
    t.assign_case(cases[5].id, ann.id, other.id);
    t.add_editing_seconds(cases[5].id, 30.5);
    t.add_editing_seconds(cases[5].id, 10);
    EXPECT_STORE_ERROR(t.add_editing_seconds(cases[5].id, -1), BadArgument);
    EXPECT_STORE_ERROR(t.set_case_scores(cases[0].id, std::nan(""), std::nullopt), BadArgument);
  });
  const Case c5 = s.read([&](ReadTxn& t) { return t.get_case(cases[5].id); });
  EXPECT_DOUBLE_EQ(c5.editing_seconds, 40.5);
  EXPECT_EQ(*c5.assignee_user_id, ann.id);

  // Next case: my own first, then unassigned by rank (nulls last), then uncertainty.
  auto next = s.read([&](ReadTxn& t) { return t.next_case(ann.id); });
  ASSERT_TRUE(next);
  EXPECT_EQ(next->id, cases[5].id);
  s.write([&](WriteTxn& t) { t.assign_case(cases[5].id, std::nullopt, ann.id); });
  s.write([&](WriteTxn& t) { t.set_case_scores(cases[5].id, std::nullopt, std::nullopt); });
  next = s.read([&](ReadTxn& t) { return t.next_case(ann.id); });
  EXPECT_EQ(next->id, cases[1].id);  // rank 1

  CaseFilter f;
  f.sort = CaseSort::AlRank;
  auto list = s.read([&](ReadTxn& t) { return t.list_cases(f); });
  ASSERT_EQ(list.total, 6);
  EXPECT_EQ(list.items[0].id, cases[1].id);
  EXPECT_EQ(list.items[1].id, cases[3].id);
  EXPECT_EQ(list.items[2].id, cases[0].id);
  f.sort = CaseSort::Uncertainty;
  f.descending = true;
  list = s.read([&](ReadTxn& t) { return t.list_cases(f); });
  EXPECT_EQ(list.items[0].id, cases[1].id);
  EXPECT_EQ(list.items[1].id, cases[2].id);
  EXPECT_FALSE(list.items[5].uncertainty);  // nulls last, also descending
  CaseFilter mine;
  mine.assignee_user_id = other.id;
  list = s.read([&](ReadTxn& t) { return t.list_cases(mine); });
  ASSERT_EQ(list.total, 1);
  EXPECT_EQ(list.items[0].id, cases[4].id);
  CaseFilter page;
  page.unassigned_only = true;
  page.limit = 2;
  page.offset = 2;
  list = s.read([&](ReadTxn& t) { return t.list_cases(page); });
  EXPECT_EQ(list.total, 5);
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_EQ(list.items[0].id, cases[2].id);
  CaseFilter st;
  st.status = CaseStatus::Validated;
  EXPECT_EQ(s.read([&](ReadTxn& t) { return t.list_cases(st).total; }), 0);
  CaseFilter bad;
  bad.limit = 0;
  EXPECT_STORE_ERROR(s.read([&](ReadTxn& t) { return t.list_cases(bad); }), BadArgument);
}

TEST(StoreModels, OneActiveVersionPerName) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  s.write([](WriteTxn& t) {
    const Model a = t.add_model("lgg-flair-3d", "1", "/models/lgg/1", R"({"modality":"MR"})");
    const Model b = t.add_model("lgg-flair-3d", "2", "/models/lgg/2");
    const Model c = t.add_model("mip-pet-2d", "1", "/models/pet/1");
    EXPECT_STORE_ERROR(t.add_model("lgg-flair-3d", "1", "/x"), Conflict);
    EXPECT_STORE_ERROR(t.add_model("x", "1", "/x", "[1,2]"), BadArgument);
    t.activate_model(a.id);
    t.activate_model(c.id);
    EXPECT_EQ(t.active_model("lgg-flair-3d")->id, a.id);
    t.activate_model(b.id);
    EXPECT_EQ(t.active_model("lgg-flair-3d")->id, b.id);
    EXPECT_EQ(t.active_model("mip-pet-2d")->id, c.id);
    EXPECT_FALSE(t.active_model("none"));
    int active = 0;
    for (const Model& m : t.list_models()) active += m.active;
    EXPECT_EQ(active, 2);
    EXPECT_EQ(t.get_model(a.id).metadata_json, R"({"modality":"MR"})");
  });
}
