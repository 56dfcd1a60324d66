#include "tumorlab/edit/delta.h"

#include <gtest/gtest.h>

#include <functional>

#include "tumorlab/core/error.h"

namespace tumorlab::edit {
namespace {

Geometry grid(Size3 size) {
  Geometry g;
  g.size = size;
  return g;
}

void paint(LabelMap& l, Size3 b, Size3 e, uint8_t v) {
  for (int64_t k = b[2]; k < e[2]; ++k)
    for (int64_t j = b[1]; j < e[1]; ++j)
      for (int64_t i = b[0]; i < e[0]; ++i) l.at(i, j, k) = v;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;
}

TEST(LabelDelta, Between_BoundsTheChangedVoxelsAndCountsThem) {
  LabelMap before(grid({10, 10, 10}));
  paint(before, {1, 1, 1}, {3, 3, 3}, 2);  // 8 voxels of label 2
  LabelMap after = before;
  paint(after, {4, 5, 6}, {6, 7, 8}, 1);  // 8 new voxels of label 1
  after.at(1, 1, 1) = 0;                  // one voxel of label 2 erased
  const LabelDelta d = LabelDelta::between(before, after, "Brush");
  EXPECT_EQ(d.name(), "Brush");
  EXPECT_EQ(d.changed_voxels(), 9);
  EXPECT_EQ(d.box(), (Box{{1, 1, 1}, {6, 7, 8}}));
  EXPECT_EQ(d.foreground_change(), 7);
  EXPECT_EQ(d.label_change(1), 8);
  EXPECT_EQ(d.label_change(2), -1);
  int64_t covered = 0;
  for (const LabelRun& r : d.runs()) covered += r.length;
  EXPECT_EQ(covered, d.box().voxel_count());
}

TEST(LabelDelta, ApplyAndRevert_RoundTrip) {
  LabelMap before(grid({7, 6, 5}));
  paint(before, {0, 0, 0}, {3, 3, 3}, 1);
  LabelMap after = before;
  paint(after, {2, 2, 2}, {7, 6, 4}, 3);
  const LabelDelta d = LabelDelta::between(before, after, "Region grow");
  LabelMap work = before;
  d.apply(work);
  EXPECT_EQ(work.voxels(), after.voxels());
  d.revert(work);
  EXPECT_EQ(work.voxels(), before.voxels());
  EXPECT_EQ(applied(before, d).voxels(), after.voxels());
  EXPECT_EQ(applied(after, d.inverse()).voxels(), before.voxels());
}

TEST(LabelDelta, NoChange_IsEmpty) {
  LabelMap l(grid({4, 4, 4}));
  paint(l, {1, 1, 1}, {2, 2, 2}, 5);
  const LabelDelta d = LabelDelta::between(l, l, "Nothing");
  EXPECT_TRUE(d.empty());
  EXPECT_TRUE(d.box().empty());
  EXPECT_TRUE(d.runs().empty());
  LabelMap work = l;
  d.apply(work);
  EXPECT_EQ(work.voxels(), l.voxels());
  EXPECT_EQ(LabelDelta::deserialize(d.serialize()), d);
}

TEST(LabelDelta, ApplyOnAChangedMap_IsConflictAndLeavesTheMapUntouched) {
  LabelMap before(grid({5, 5, 5}));
  LabelMap after = before;
  paint(after, {1, 1, 1}, {4, 4, 4}, 1);
  const LabelDelta d = LabelDelta::between(before, after, "Brush");
  LabelMap other = before;
  other.at(2, 2, 2) = 7;
  const auto copy = other.voxels();
  EXPECT_EQ(code_of([&] { d.apply(other); }), ErrorCode::Conflict);
  EXPECT_EQ(other.voxels(), copy);
  LabelMap wrong_size(grid({5, 5, 4}));
  EXPECT_EQ(code_of([&] { d.apply(wrong_size); }), ErrorCode::GeometryMismatch);
  // Reverting needs the "after" values.
  EXPECT_EQ(code_of([&] { d.revert(other); }), ErrorCode::Conflict);
}

TEST(LabelDelta, Serialize_RoundTripsAndIsSmallForALocalEdit) {
  LabelMap before(grid({64, 64, 32}));
  LabelMap after = before;
  paint(after, {10, 10, 10}, {20, 20, 12}, 1);
  const LabelDelta d = LabelDelta::between(before, after, "Brush");
  const auto bytes = d.serialize();
  // One run per row of the 10x10x2 box: the edit fills its box, so one run in all.
  EXPECT_EQ(d.runs().size(), 1u);
  EXPECT_LT(bytes.size(), 100u);
  const LabelDelta back = LabelDelta::deserialize(bytes);
  EXPECT_EQ(back, d);
  EXPECT_EQ(back.changed_voxels(), 200);
  EXPECT_EQ(applied(before, back).voxels(), after.voxels());
}

TEST(LabelDelta, Deserialize_RefusesDamagedBytes) {
  LabelMap before(grid({8, 8, 8}));
  LabelMap after = before;
  paint(after, {1, 2, 3}, {4, 5, 6}, 2);
  after.at(2, 3, 4) = 0;
  const auto bytes = LabelDelta::between(before, after, "x").serialize();
  // Every truncation is refused.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(code_of([&] { LabelDelta::deserialize(cut); }), ErrorCode::CorruptFile) << "length " << n;
  }
  auto extra = bytes;
  extra.push_back(0);
  EXPECT_EQ(code_of([&] { LabelDelta::deserialize(extra); }), ErrorCode::CorruptFile);
  auto magic = bytes;
  magic[0] = 'X';
  EXPECT_EQ(code_of([&] { LabelDelta::deserialize(magic); }), ErrorCode::CorruptFile);
  // A box outside the grid: the first box-end byte (after magic 8, name 4+1, grid 24, begin 24).
  auto box = bytes;
  box[8 + 4 + 1 + 24 + 24] = 200;
  EXPECT_EQ(code_of([&] { LabelDelta::deserialize(box); }), ErrorCode::CorruptFile);
  // Flipping any single byte never crashes (an error or a valid, different delta).
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto flipped = bytes;
    flipped[n] ^= 0x5A;
    try {
      const LabelDelta d = LabelDelta::deserialize(flipped);
      const Size3 gs = d.grid_size();
      if (gs[0] * gs[1] * gs[2] > 1'000'000) continue;
      LabelMap work(grid(gs));
      try {
        d.apply(work);
      } catch (const Error&) {
      }
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::CorruptFile);
    }
  }
}

TEST(DeltaJournal, UndoRedo_FollowsTheEditsAndDropsTheRedoBranch) {
  LabelMap l(grid({6, 6, 6}));
  DeltaJournal journal;
  const LabelMap s0 = l;
  LabelMap s1 = l;
  paint(s1, {0, 0, 0}, {2, 2, 2}, 1);
  journal.push(LabelDelta::between(l, s1, "Brush"));
  l = s1;
  LabelMap s2 = l;
  paint(s2, {1, 1, 1}, {4, 4, 4}, 2);
  journal.push(LabelDelta::between(l, s2, "Region grow"));
  l = s2;
  journal.push(LabelDelta::between(l, l, "Empty"));  // ignored
  EXPECT_EQ(journal.size(), 2u);

  EXPECT_EQ(journal.undo(l), "Region grow");
  EXPECT_EQ(l.voxels(), s1.voxels());
  EXPECT_EQ(journal.undo(l), "Brush");
  EXPECT_EQ(l.voxels(), s0.voxels());
  EXPECT_FALSE(journal.can_undo());
  EXPECT_EQ(code_of([&] { journal.undo(l); }), ErrorCode::BadArgument);
  EXPECT_EQ(journal.redo(l), "Brush");
  EXPECT_EQ(l.voxels(), s1.voxels());
  // A new edit after an undo drops "Region grow" from the redo branch.
  LabelMap s3 = l;
  s3.at(5, 5, 5) = 4;
  journal.push(LabelDelta::between(l, s3, "Eraser"));
  l = s3;
  EXPECT_FALSE(journal.can_redo());
  EXPECT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal.undo(l), "Eraser");
  EXPECT_EQ(journal.undo(l), "Brush");
  EXPECT_EQ(l.voxels(), s0.voxels());
}

TEST(DeltaJournal, MaxEntries_DropsTheOldest) {
  LabelMap l(grid({4, 1, 1}));
  DeltaJournal journal(2);
  for (int i = 0; i < 4; ++i) {
    LabelMap next = l;
    next.at(i, 0, 0) = 1;
    journal.push(LabelDelta::between(l, next, "step" + std::to_string(i)));
    l = next;
  }
  EXPECT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal.undo(l), "step3");
  EXPECT_EQ(journal.undo(l), "step2");
  EXPECT_FALSE(journal.can_undo());
  EXPECT_EQ(l.count_nonzero(), 2);
}

}  // namespace
}  // namespace tumorlab::edit
